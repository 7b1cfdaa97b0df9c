"""The vendor conformance kit: does a recognizer do what it declares, only that, and well enough?

Everything goes through the public :class:`~facegate.Gate` -- confined workers, as in
production -- so a recognizer is judged by what the gate lets out: any error outcome, any note
that the gate dropped something, any refused attempt (also between and after calls) fails it.
A second, in-process run against a canary store checks that the plugin leaves the gate's store
alone when nothing stops it.  :func:`run_hostile_suite` is the other direction: it runs the
engine against every hostile recognizer and reports each guarantee as holding or not.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .._plugins import load_registry, validate_recognizer_info
from ..errors import FacegateError
from ..gate import Gate, Outcome
from ..policy import Policy, load_policy
from ..recognition import AnalyzeResult, DetectResult, Face, RecognizerInfo, VerifyResult
from ._fake import MemoryAudit, synthetic_face_image

Pair = tuple[np.ndarray, np.ndarray]
DETECT = {"operation": "detect", "purpose": "other"}
VERIFY = {"operation": "verify", "purpose": "other"}


@dataclass
class ConformanceReport:
    recognizer: str
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks)

    def failures(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]

    def assert_ok(self) -> None:
        assert self.ok, f"recognizer `{self.recognizer}` is not conformant:\n  " + "\n  ".join(self.failures())


def conformance_policy() -> Policy:
    with resources.as_file(resources.files("facegate.testing").joinpath("pack")) as path:
        return load_policy(path)


def shipped_pairs() -> tuple[list[Pair], list[Pair]]:
    """Photo pairs from scikit-image's wheel: (same person, different people).

    Same person: the astronaut portrait and a mirrored, rescaled crop of it.  Different: the
    astronaut and the cameraman (his head cropped and enlarged 3×, so detectors find it).  Empty
    lists if scikit-image is not installed.
    """
    try:
        from skimage import data, transform
    except ImportError:
        return [], []
    astronaut = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    crop = astronaut[20:460, 60:470, :][:, ::-1]
    scaled = (transform.rescale(crop, 0.8, channel_axis=2, anti_aliasing=True) * 255).round().astype(np.uint8)
    camera = np.asarray(data.camera())[20:260, 140:380]  # type: ignore[no-untyped-call]
    cameraman = (transform.rescale(np.repeat(camera[:, :, None], 3, axis=2), 3, channel_axis=2) * 255).round().astype(np.uint8)
    return [(astronaut, scaled)], [(astronaut, cameraman)]


def _plugin_for(info: RecognizerInfo) -> Any:
    from ._fake import fake_plugin

    return fake_plugin(info)


def check_recognizer(info: RecognizerInfo, *, config: Mapping[str, Any] | None = None,
                     face_images: Iterable[np.ndarray] = (), empty_images: Iterable[np.ndarray] = (),
                     same_person: Sequence[Pair] | None = None, different_people: Sequence[Pair] | None = None,
                     timeout: float = 60.0) -> ConformanceReport:
    """Check a recognizer against its declaration, the output contract and its own threshold.

    ``face_images`` must each hold at least one face; ``empty_images`` none.  ``same_person`` and
    ``different_people`` are photo pairs for the quality check (default: :func:`shipped_pairs`).
    """
    report = ConformanceReport(getattr(info, "id", "?"))
    try:
        validate_recognizer_info(info)
        report.add("declaration (ids, operations, metric, threshold, embedding_size)", True)
    except FacegateError as exc:
        report.add("declaration (ids, operations, metric, threshold, embedding_size)", False, str(exc))
        return report
    registry = load_registry((), extra=[(f"conformance:{info.id}", _plugin_for(info))])
    try:
        gate = Gate(conformance_policy(), info.id, registry=registry, recognizer_config=config or {}, audit=MemoryAudit(), timeout=timeout)
    except FacegateError as exc:
        report.add("starts in a confined worker (no socket, no writable file, filters in force)", False, str(exc))
        return report
    with gate:
        report.add("starts in a confined worker (no socket, no writable file, filters in force)", True, gate.confinement.describe())
        faces = list(face_images)
        for i, image in enumerate(faces):
            _check_faces(report, gate, info, image, f"face image {i}", expect_faces=True)
        for i, image in enumerate(empty_images):
            _check_faces(report, gate, info, image, f"empty image {i}", expect_faces=False)
        if not faces:
            report.add("face images given", False, "pass at least one image with a face")
        if faces:  # a refused attempt made after the last call shows up on the next one
            out = gate.process(DETECT, faces[0])
            report.add("nothing attempted between or after calls", _clean(out), _why(out))
        if "analyze" in info.capabilities.operations and faces:
            wanted = sorted(info.capabilities.attributes)[:1]
            out = gate.process({**DETECT, "operation": "analyze", "attributes": wanted}, faces[0])
            ok = _clean(out) and isinstance(out.result, AnalyzeResult)
            report.add("analyze returns only the approved attributes", ok, _why(out))
        if info.capabilities.operations & {"verify", "identify", "enroll"}:
            if same_person is None and different_people is None:
                same_person, different_people = shipped_pairs()
            _check_quality(report, gate, info, list(same_person or ()), list(different_people or ()))
    if faces:
        quick = Gate(conformance_policy(), info.id, registry=registry, recognizer_config=config or {}, audit=MemoryAudit(), timeout=1e-4)
        with quick:  # a deadline far shorter than any real model: the gate must not wait it out
            out = quick.process(DETECT, faces[0])
        honoured = out.status == "executed" or (out.error_code == "recognizer_timeout" and out.result is None)
        report.add("timeouts are honoured (error outcome, no result, worker replaced)", honoured, _why(out))
        _check_canary(report, registry, info, config or {}, faces[0], timeout)
    return report


def _clean(out: Outcome) -> bool:
    return out.status == "executed" and not out.notes


def _why(out: Outcome) -> str:
    return f"{out.status}: {out.error or ''} {'; '.join(out.notes)}".strip()


def _check_faces(report: ConformanceReport, gate: Gate, info: RecognizerInfo, image: np.ndarray, label: str, *, expect_faces: bool) -> None:
    out = gate.process(DETECT, image)
    report.add(f"{label}: detect returns only Faces inside the image, nothing else", _clean(out) and isinstance(out.result, DetectResult), _why(out))
    if not isinstance(out.result, DetectResult):
        return
    found = len(out.result.faces)
    report.add(f"{label}: {'finds a face' if expect_faces else 'finds no face'}", bool(found) == expect_faces, f"found {found}")
    if expect_faces and found and info.capabilities.operations & {"verify", "identify", "enroll"}:
        again = gate.process(VERIFY, image, reference=image)
        result = again.result
        ok = _clean(again) and isinstance(result, VerifyResult) and result.score is not None and result.same_person
        if ok and isinstance(result, VerifyResult) and result.score is not None:
            ok = abs(result.score - (1.0 if info.metric == "cosine" else 0.0)) < 1e-3
        report.add(f"{label}: embed is a finite vector of the declared size, deterministic", ok, _why(again) + f" score {getattr(result, 'score', None)}")


def _check_quality(report: ConformanceReport, gate: Gate, info: RecognizerInfo, same: list[Pair], different: list[Pair]) -> None:
    if not same or not different:
        report.add("quality pairs given", False, "pass same_person and different_people photo pairs (or install scikit-image)")
        return
    for label, pairs, expected in (("same person", same, True), ("different people", different, False)):
        for i, (a, b) in enumerate(pairs):
            out = gate.process(VERIFY, a, reference=b)
            result = out.result
            ok = out.status == "executed" and isinstance(result, VerifyResult) and result.score is not None and result.same_person is expected
            side = "above" if (expected == (info.metric == "cosine")) else "below"
            report.add(f"quality: {label} pair {i} scores {side} the declared threshold {info.threshold}", ok,
                       f"{_why(out)} score {getattr(result, 'score', None)}")


def _check_canary(report: ConformanceReport, registry: Any, info: RecognizerInfo, config: Mapping[str, Any], image: np.ndarray, timeout: float) -> None:
    """Run the plugin in-process next to a canary store: it must not touch the store it could reach."""
    from ..store import SQLiteStore

    name = "leaves the gate's store alone even in-process (canary store)"
    with tempfile.TemporaryDirectory(prefix="facegate-canary-") as tmp, SQLiteStore(Path(tmp) / "canary.db") as store:
        vector = np.ones(info.embedding_size or 8, np.float32)
        store.gallery.enroll("canary", vector / np.linalg.norm(vector), purpose="other", consent_id=None, retention_days=1,
                             location="server", model_id=info.id, decision_id="canary")
        before = len(list(store.audit.query()))
        try:
            gate = Gate(conformance_policy(), info.id, registry=registry, recognizer_config=config, store=store, timeout=timeout, isolation="none")
        except FacegateError as exc:
            report.add(name, False, f"does not start in-process: {exc}")
            return
        with gate:
            gate.process(DETECT, image)
        records = [r["record"] for r in store.audit.query()][before:]
        kinds = [r.get("kind") for r in records]
        intact = store.audit.verify().ok and kinds == ["decision", "outcome"] and store.gallery.count_subjects() == 1
        report.add(name, intact, "" if intact else f"store changed: records {kinds}, subjects {store.gallery.count_subjects()}")


def check_observer(plugin: Any, name: str = "observer") -> ConformanceReport:
    """Check a ``record_decision`` observer: it gets frozen copies, and must not try to change them."""
    from ._fake import fake_info, fake_plugin

    report = ConformanceReport(name)
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info())), (name, plugin)])
    problems = registry.notify({"kind": "decision", "decision_id": "x", "request": {"operation": "verify"}, "effect": "permit"})
    report.add("observer leaves the records it receives unchanged", not problems, "; ".join(problems))
    audit = MemoryAudit()
    with Gate(conformance_policy(), "fake", registry=registry, audit=audit) as gate:
        out = gate.process(VERIFY, synthetic_face_image(1), reference=synthetic_face_image(1))
    report.add("what executes is what was decided", isinstance(out.result, VerifyResult), _why(out))
    return report


def run_hostile_suite(make_gate: Callable[..., Gate], *, image: np.ndarray | None = None, workdir: str | Path | None = None) -> ConformanceReport:
    """Run the engine against every hostile recognizer; report each guarantee as holding or not.

    ``make_gate(recognizer_id, config)`` builds a gate (its policy must permit the requests, e.g.
    the conformance pack) and may raise :class:`~facegate.ConfigError` to refuse a recognizer.
    ``workdir`` is where the hostile recognizers try to leave images (a fresh temp folder if omitted).
    """
    import socket

    from ..errors import ConfigError

    report = ConformanceReport("engine")
    img = image if image is not None else synthetic_face_image(1)
    analyze = {"operation": "analyze", "attributes": ["age"], "purpose": "other"}
    with tempfile.TemporaryDirectory(prefix="facegate-hostile-") as tmp:
        folder = Path(workdir) if workdir is not None else Path(tmp)
        victims = [folder / "victim-truncate.txt", folder / "victim-delete.txt"]
        for v in victims:
            v.write_text("keep me")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        config = {"target": str(folder), "port": listener.getsockname()[1], "victims": [str(v) for v in victims]}

        def run(rid: str, request: Mapping[str, Any] = DETECT, times: int = 1) -> list[Outcome] | str:
            try:
                with make_gate(rid, config) as gate:
                    return [gate.process(request, img) for _ in range(times)]
            except ConfigError as exc:
                return f"refused: {exc}"

        def contained(rid: str, what: str, request: Mapping[str, Any] = DETECT, times: int = 1, refuse_ok: bool = False) -> None:
            outs = run(rid, request, times)
            if isinstance(outs, str):
                report.add(f"{rid}: {what}", refuse_ok, outs)
                return
            errors = [o for o in outs if o.status == "error"]
            ok = bool(errors) and all(o.result is None for o in errors) and all(len(o.error or "") <= 200 for o in errors)
            report.add(f"{rid}: {what}", ok, "; ".join(_why(o) for o in outs))

        outs = run("hostile-extra-attributes", analyze)
        attrs = set().union(*(set(f.attributes) for f in outs[0].result.faces)) if not isinstance(outs, str) and isinstance(outs[0].result, AnalyzeResult) else {"?"}
        report.add("unrequested attributes never leave the gate", attrs == {"age"}, str(attrs))
        for rid, what in (("hostile-keeps-image", "a kept image withholds the result"), ("hostile-writes-image", "writes refused"),
                          ("hostile-exfiltrates", "sockets refused"), ("hostile-raises", "failure is an error outcome"),
                          ("hostile-malformed", "malformed output refused"), ("hostile-sqlite", "sqlite3 cannot write"),
                          ("hostile-del", "finalizers cannot write"), ("hostile-vandal", "no truncate or delete"),
                          ("hostile-hex-error", "error text is short and masked")):
            contained(rid, what)
        contained("hostile-lies", "lying about capabilities is refused", analyze)
        contained("hostile-writes-later", "a thread writing after the call is refused", times=2)
        contained("hostile-pixels", "pixels as an embedding are refused", {"operation": "verify", "purpose": "other"})
        for rid, what in (("hostile-fd-from-init", "a file opened in __init__ stops the worker"),
                          ("hostile-socket-from-init", "a socket opened in __init__ stops the worker"),
                          ("hostile-unconfines", "tampering with the confinement stops the worker")):
            outs = run(rid)
            report.add(f"{rid}: {what}", isinstance(outs, str), outs if isinstance(outs, str) else "; ".join(_why(o) for o in outs))
        outs = run("hostile-face-smuggler")
        smuggled = isinstance(outs, str) or not isinstance(outs[0].result, DetectResult) or any(type(f) is not Face for f in outs[0].result.faces)
        report.add("hostile-face-smuggler: only plain Faces reach the caller", not smuggled, "" if isinstance(outs, str) else _why(outs[0]))
        planted = "FACEGATE_HOSTILE_SUITE_SECRET" not in os.environ
        os.environ.setdefault("FACEGATE_HOSTILE_SUITE_SECRET", "canary")  # a credential the gate's process has
        try:
            outs = run("hostile-env-snoop")
        finally:
            if planted:
                del os.environ["FACEGATE_HOSTILE_SUITE_SECRET"]
        snooped = isinstance(outs, str) or not isinstance(outs[0].result, DetectResult) or any(f.score != 0.99 for f in outs[0].result.faces)
        report.add("hostile-env-snoop: no credentials in the recognizer's environment", not snooped, "" if isinstance(outs, str) else _why(outs[0]))
        outs = run("hostile-store-walker")
        found = isinstance(outs, str) or not isinstance(outs[0].result, DetectResult) or any(f.score != 0.99 for f in outs[0].result.faces)
        report.add("hostile-store-walker: the gate's objects are out of reach", not found, "" if isinstance(outs, str) else _why(outs[0]))
        contained("hostile-hangs", "a hung call times out (error outcome)")
        try:
            listener.accept()[0].close()
            report.add("no connection reached the listener", False, "a hostile recognizer connected")
        except BlockingIOError:
            report.add("no connection reached the listener", True)
        finally:
            listener.close()
        leaks = sorted(p.name for p in folder.iterdir() if p.name.startswith("facegate-") and p.stat().st_size > 0)
        report.add("no image reached the disk", not leaks, ", ".join(leaks))
        report.add("no file was truncated or deleted", all(v.exists() and v.read_text() == "keep me" for v in victims))
    return report
