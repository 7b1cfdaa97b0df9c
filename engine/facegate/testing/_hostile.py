"""Deliberately bad recognizers: every attack the gate claims to stop, written as a vendor could.

Each is a module-level class (so a worker process can import it) registered under a
``hostile-*`` id.  Their configuration may name a ``target`` folder (where they try to leave
the image), a ``port`` (a loopback listener they try to reach) and ``victims`` (files they try to
truncate and delete).  A recognizer that acts outside a call (a thread, ``__del__``) reports on
the next call what happened: the first face's score is 0.5 if its attempt was refused and 0.25
if it succeeded, so a test can tell "contained" from "never tried".
"""

from __future__ import annotations

import gc
import os
import socket
import sqlite3
import tempfile
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..hookspecs import hookimpl
from ..recognition import Capabilities, Face, RecognizerInfo
from ._fake import FakeRecognizer

#: Released by tests (``HANG.set()``) so an in-process hanging recognizer's thread can end.
HANG = threading.Event()
REFUSED, LEAKED = 0.5, 0.25


class _Configured(FakeRecognizer):
    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__({})
        self.target = Path(str(config.get("target", tempfile.gettempdir())))
        self.port = int(config.get("port", 9))
        self.victims = [Path(str(v)) for v in config.get("victims", ())]
        self.attempt: float | None = None  # REFUSED / LEAKED once an off-call attempt finished

    def _reported(self, faces: list[Face]) -> list[Face]:
        if self.attempt is None or not faces:
            return faces
        first = faces[0]
        return [Face(first.box, self.attempt, first.landmarks), *faces[1:]]

    def _try_write(self, name: str, data: bytes) -> None:
        try:
            (self.target / name).write_bytes(data)
            self.attempt = LEAKED
        except OSError:
            self.attempt = REFUSED


class ExtraAttributes(FakeRecognizer):
    """Returns sensitive attributes it was not asked for."""

    def analyze(self, image: np.ndarray, face: Face, attributes: frozenset[str]) -> dict[str, Any]:
        return {**super().analyze(image, face, attributes), "ethnicity": "inferred", "race": "inferred", "religion": "inferred"}


class KeepsImage(FakeRecognizer):
    """Keeps a view of every image it sees."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__({})
        self.kept: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> list[Face]:
        self.kept.append(image[:10])
        return super().detect(image)


class WritesImage(_Configured):
    """Writes the image to disk during the call, and swallows the refusal."""

    def detect(self, image: np.ndarray) -> list[Face]:
        try:
            np.save(self.target / "facegate-hostile-leak.npy", image)
        except OSError:
            pass  # swallowing the refusal must not hide the attempt
        return super().detect(image)


class Exfiltrates(_Configured):
    """Opens a network connection (loopback) during the call to send the image."""

    def detect(self, image: np.ndarray) -> list[Face]:
        with socket.socket() as s:
            s.settimeout(0.2)
            s.connect(("127.0.0.1", self.port))
            s.sendall(image.tobytes()[:65536])
        return super().detect(image)


class WritesLater(_Configured):
    """Starts a thread that writes the image after the call has returned."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.thread: threading.Thread | None = None

    def detect(self, image: np.ndarray) -> list[Face]:
        if self.thread is not None:
            self.thread.join()
            return self._reported(super().detect(image))
        copy = bytes(image.tobytes())
        returned = threading.Event()

        def later() -> None:
            returned.wait()
            self._try_write("facegate-thread-leak.bin", copy)

        self.thread = threading.Thread(target=later, daemon=True)
        self.thread.start()
        faces = super().detect(image)
        try:
            return faces
        finally:
            returned.set()  # the write starts as detect returns


class FdFromInit(_Configured):
    """Opens a file for writing in ``__init__`` and writes every image to it."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.sink = open(self.target / "facegate-fd-leak.bin", "wb")  # noqa: SIM115 - held on purpose

    def detect(self, image: np.ndarray) -> list[Face]:
        self.sink.write(image.tobytes())
        self.sink.flush()
        return super().detect(image)


class SqliteLeak(_Configured):
    """Stores the image in its own SQLite database."""

    def detect(self, image: np.ndarray) -> list[Face]:
        try:
            db = sqlite3.connect(self.target / "facegate-leak.db")
            db.execute("create table if not exists leak (pixels blob)")
            db.execute("insert into leak values (?)", (image.tobytes(),))
            db.commit()
            db.close()
        except sqlite3.Error:
            pass
        return super().detect(image)


@dataclass(frozen=True, slots=True)
class _Trap(Face):
    """A face whose ``__del__`` writes the image wherever it is finally dropped."""

    payload: bytes = b""
    target: str = ""

    def __del__(self) -> None:
        try:
            Path(self.target, "facegate-del-leak.bin").write_bytes(self.payload)
            _DEL_ATTEMPTS.append(LEAKED)
        except OSError:
            _DEL_ATTEMPTS.append(REFUSED)


_DEL_ATTEMPTS: list[float] = []


class DelLeak(_Configured):
    """Returns faces that write the image when garbage-collected."""

    def detect(self, image: np.ndarray) -> list[Face]:
        if _DEL_ATTEMPTS:
            self.attempt = _DEL_ATTEMPTS[-1]
            return self._reported(super().detect(image))
        return [_Trap(f.box, f.score, f.landmarks, image.tobytes(), str(self.target)) for f in super().detect(image)]


class SocketFromInit(_Configured):
    """Connects a socket in ``__init__`` and sends every image through it."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)

    def detect(self, image: np.ndarray) -> list[Face]:
        self.sock.sendall(image.tobytes()[:65536])
        return super().detect(image)


class Vandal(_Configured):
    """Truncates one file and deletes another (``victims``), swallowing any refusal."""

    def detect(self, image: np.ndarray) -> list[Face]:
        for i, victim in enumerate(self.victims[:2]):
            try:
                if i == 0:
                    os.truncate(victim, 0)
                else:
                    os.remove(victim)
            except OSError:
                pass
        return super().detect(image)


class StoreWalker(_Configured):
    """Finds the gate through the garbage collector: identifies, erases a subject, forges a permit."""

    def detect(self, image: np.ndarray) -> list[Face]:
        found = 0.99
        for obj in gc.get_objects():
            try:
                if not (hasattr(obj, "gallery") and hasattr(obj, "audit") and hasattr(obj, "policy")):
                    continue
            except Exception:
                continue
            found = LEAKED
            try:
                gallery, audit = obj.gallery, obj.audit
                if gallery is not None:
                    vector = np.ones(64, np.float32) / 8.0
                    gallery.identify(vector, k=5, threshold=-1.0, metric="cosine", model_id="fake")
                    for subject in ("victim",):
                        gallery.erase_subject(subject)
                audit.append({"kind": "decision", "decision_id": "forged", "time": "2026-01-01T00:00:00+00:00", "policy": {},
                              "request": {"operation": "identify"}, "effect": "permit", "reason": "forged", "determining": [],
                              "obligations": [], "errors": [], "violations": []})
            except Exception:
                pass
        faces = super().detect(image)
        return [Face(faces[0].box, found, faces[0].landmarks), *faces[1:]] if faces else faces


class EnvSnoop(FakeRecognizer):
    """Looks for credentials in its environment; the first face's score is 0.25 if it found any."""

    def detect(self, image: np.ndarray) -> list[Face]:
        found = any(k.endswith(("_KEY", "_TOKEN", "_PASSWORD", "_SECRET")) or "SECRET" in k for k in os.environ)
        faces = super().detect(image)
        return [Face(faces[0].box, LEAKED if found else faces[0].score, faces[0].landmarks), *faces[1:]] if faces else faces


@dataclass(frozen=True, slots=True)
class _Smuggler(Face):
    embedding: tuple[float, ...] = ()
    crop: bytes = b""
    ethnicity: str = ""


class FaceSmuggler(FakeRecognizer):
    """On a detect-only request, returns a Face subclass carrying an embedding, a crop and an inferred ethnicity."""

    def detect(self, image: np.ndarray) -> list[Face]:
        out: list[Face] = []
        for f in super().detect(image):
            x, y, w, h = (int(v) for v in f.box)
            out.append(_Smuggler(f.box, f.score, f.landmarks, tuple(float(v) for v in self.embed(image, f)),
                                 image[y : y + h, x : x + w].tobytes(), "inferred"))
        return out


class HexError(FakeRecognizer):
    """Raises an exception whose message is the image as hex."""

    def detect(self, image: np.ndarray) -> list[Face]:
        raise RuntimeError("cannot process " + image.tobytes().hex())


class PixelsAsEmbedding(FakeRecognizer):
    """Returns the face's raw pixels as its "embedding"."""

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        x, y, w, h = (int(v) for v in face.box)
        return image[y : y + h, x : x + w].astype(np.float32).ravel()


class Raises(FakeRecognizer):
    def detect(self, image: np.ndarray) -> list[Face]:
        raise RuntimeError("backend exploded")


class Hangs(FakeRecognizer):
    def detect(self, image: np.ndarray) -> list[Face]:
        HANG.wait(60)
        return super().detect(image)


class BurnsCpu(FakeRecognizer):
    """Spins on the CPU until something stops it."""

    def detect(self, image: np.ndarray) -> list[Face]:
        n = 0
        while not HANG.is_set():
            n += 1
        return super().detect(image)


class Hoards(FakeRecognizer):
    """Asks for far more memory than any face model needs."""

    def detect(self, image: np.ndarray) -> list[Face]:
        hoard = np.ones(16 * 1024**3 // 8)  # 16 GiB
        return super().detect(image) if hoard.size else []


class Malformed(FakeRecognizer):
    def detect(self, image: np.ndarray) -> list[Face]:
        return [{"box": [0, 0, 10, 10], "score": 3}]  # type: ignore[list-item]


class Lies(FakeRecognizer):
    """Declares a 128-D embedding and `analyze`, but returns 3 values and has no analyze."""

    analyze = None  # type: ignore[assignment]

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return np.ones(3, dtype=np.float32)


class Unconfines(FakeRecognizer):
    """Switches off the worker's second filter while its model loads (the gate must notice)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__({})
        try:
            from ..gate import _confine

            _confine.image_stage = lambda: None
        except ImportError:
            pass


def _info(rid: str, factory: Callable[[Mapping[str, Any]], Any], **kw: Any) -> RecognizerInfo:
    kw.setdefault("embedding_size", 64)
    return RecognizerInfo(
        id=rid, version="0.0.1",
        capabilities=Capabilities(frozenset({"detect", "verify", "identify", "enroll", "analyze"}), frozenset({"age", "emotion"})),
        factory=factory, config_schema={"type": "object"}, metric="cosine", threshold=0.9, **kw,
    )


#: id -> RecognizerInfo of each hostile recognizer.
HOSTILE: dict[str, RecognizerInfo] = {
    "hostile-extra-attributes": _info("hostile-extra-attributes", ExtraAttributes),
    "hostile-keeps-image": _info("hostile-keeps-image", KeepsImage),
    "hostile-writes-image": _info("hostile-writes-image", WritesImage),
    "hostile-exfiltrates": _info("hostile-exfiltrates", Exfiltrates),
    "hostile-writes-later": _info("hostile-writes-later", WritesLater),
    "hostile-fd-from-init": _info("hostile-fd-from-init", FdFromInit),
    "hostile-sqlite": _info("hostile-sqlite", SqliteLeak),
    "hostile-del": _info("hostile-del", DelLeak),
    "hostile-socket-from-init": _info("hostile-socket-from-init", SocketFromInit),
    "hostile-vandal": _info("hostile-vandal", Vandal),
    "hostile-store-walker": _info("hostile-store-walker", StoreWalker),
    "hostile-face-smuggler": _info("hostile-face-smuggler", FaceSmuggler),
    "hostile-env-snoop": _info("hostile-env-snoop", EnvSnoop),
    "hostile-hex-error": _info("hostile-hex-error", HexError),
    "hostile-pixels": _info("hostile-pixels", PixelsAsEmbedding),
    "hostile-raises": _info("hostile-raises", Raises),
    "hostile-hangs": _info("hostile-hangs", Hangs),
    "hostile-burns-cpu": _info("hostile-burns-cpu", BurnsCpu),
    "hostile-hoards": _info("hostile-hoards", Hoards),
    "hostile-malformed": _info("hostile-malformed", Malformed),
    "hostile-lies": _info("hostile-lies", Lies, embedding_size=128),
    "hostile-unconfines": _info("hostile-unconfines", Unconfines),
}

#: A recognizer that declares embedding operations but no ``embedding_size``: registration refuses it.
UNDECLARED_SIZE = RecognizerInfo(
    id="hostile-undeclared-size", version="0.0.1", capabilities=Capabilities(frozenset({"detect", "enroll"})),
    factory=PixelsAsEmbedding, config_schema={"type": "object"}, metric="cosine", threshold=0.9,
)


def hostile_plugin() -> types.ModuleType:
    @hookimpl
    def register_recognizers(register: Callable[[RecognizerInfo], None]) -> None:
        for info in HOSTILE.values():
            register(info)

    plugin = types.ModuleType("facegate_test_plugin")
    plugin.register_recognizers = register_recognizers  # type: ignore[attr-defined]
    return plugin


def mutating_observer_plugin() -> types.ModuleType:
    """A ``record_decision`` observer that edits what it receives: a verify into an analyze of ethnicity."""

    @hookimpl
    def record_decision(record: Any) -> None:
        request = record.get("request")
        if isinstance(request, dict):
            request["operation"] = "analyze"
            request["attributes"] = ["age"]

    plugin = types.ModuleType("facegate_hostile_observer")
    plugin.record_decision = record_decision  # type: ignore[attr-defined]
    return plugin
