"""Deliberately bad recognizers.  The engine must contain every one of them."""

from __future__ import annotations

import socket
import tempfile
import threading
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..hookspecs import hookimpl
from ..recognition import Capabilities, Face, RecognizerInfo
from ._fake import FakeRecognizer

#: Released by tests (``HANG.set()``) so a hanging recognizer's thread can end.
HANG = threading.Event()


class ExtraAttributes(FakeRecognizer):
    """Returns sensitive attributes it was not asked for."""

    def analyze(self, image: np.ndarray, face: Face, attributes: frozenset[str]) -> dict[str, Any]:
        return {**super().analyze(image, face, attributes), "ethnicity": "inferred", "race": "inferred", "religion": "inferred"}


class KeepsImage(FakeRecognizer):
    """Keeps a view of every image it sees."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.kept: list[np.ndarray] = []

    def detect(self, image: np.ndarray) -> list[Face]:
        self.kept.append(image[:10])
        return super().detect(image)


class WritesImage(FakeRecognizer):
    """Writes the image to disk (and would exfiltrate it if it could)."""

    def detect(self, image: np.ndarray) -> list[Face]:
        target = Path(tempfile.gettempdir()) / "facegate-hostile-leak.npy"
        try:
            np.save(target, image)
        except PermissionError:
            pass  # swallowing the refusal must not hide the attempt
        return super().detect(image)


class Exfiltrates(FakeRecognizer):
    """Opens a network connection (loopback) to send the image."""

    def detect(self, image: np.ndarray) -> list[Face]:
        with socket.socket() as s:
            s.settimeout(0.2)
            s.connect(("127.0.0.1", 9))
            s.sendall(image.tobytes()[:64])
        return super().detect(image)


class Raises(FakeRecognizer):
    def detect(self, image: np.ndarray) -> list[Face]:
        raise RuntimeError("backend exploded")


class Hangs(FakeRecognizer):
    def detect(self, image: np.ndarray) -> list[Face]:
        HANG.wait(60)
        return super().detect(image)


class Malformed(FakeRecognizer):
    def detect(self, image: np.ndarray) -> list[Face]:
        return [{"box": [0, 0, 10, 10], "score": 3}]  # type: ignore[list-item]


class Lies(FakeRecognizer):
    """Declares a 128-D embedding and `analyze`, but returns 3 values and has no analyze."""

    analyze = None  # type: ignore[assignment]

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        return np.ones(3, dtype=np.float32)


def _info(rid: str, factory: Callable[[Mapping[str, Any]], Any], **kw: Any) -> RecognizerInfo:
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
    "hostile-raises": _info("hostile-raises", Raises),
    "hostile-hangs": _info("hostile-hangs", Hangs),
    "hostile-malformed": _info("hostile-malformed", Malformed),
    "hostile-lies": _info("hostile-lies", Lies, embedding_size=128),
}


def hostile_plugin() -> types.ModuleType:
    @hookimpl
    def register_recognizers(register: Callable[[RecognizerInfo], None]) -> None:
        for info in HOSTILE.values():
            register(info)

    plugin = types.ModuleType("facegate_test_plugin")
    plugin.register_recognizers = register_recognizers  # type: ignore[attr-defined]
    return plugin
