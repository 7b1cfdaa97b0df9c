"""The vendor conformance kit: does a recognizer do what it declares, safely, with typed output?"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .. import _sandbox
from .._plugins import load_registry, validate_recognizer_info
from ..errors import FacegateError
from ..gate import Gate
from ..policy import Policy, load_policy
from ..recognition import AnalyzeResult, RecognizerInfo
from ._fake import MemoryAudit, synthetic_face_image


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


def _plugin_for(info: RecognizerInfo) -> Any:
    from ._fake import fake_plugin

    return fake_plugin(info)


def check_recognizer(info: RecognizerInfo, *, config: Mapping[str, Any] | None = None,
                     face_images: Iterable[np.ndarray] = (), empty_images: Iterable[np.ndarray] = (),
                     timeout: float = 60.0) -> ConformanceReport:
    """Check a recognizer against its declaration on the vendor's images.

    ``face_images`` must each hold at least one face; ``empty_images`` none.
    """
    report = ConformanceReport(getattr(info, "id", "?"))
    try:
        validate_recognizer_info(info)
        report.add("declaration", True)
    except FacegateError as exc:
        report.add("declaration", False, str(exc))
        return report
    try:
        registry = load_registry((), extra=[(f"conformance:{info.id}", _plugin_for(info))])
        gate = Gate(conformance_policy(), info.id, registry=registry, recognizer_config=config or {}, audit=MemoryAudit(), timeout=timeout)
        report.add("factory builds from a valid config", True)
    except FacegateError as exc:
        report.add("factory builds from a valid config", False, str(exc))
        return report
    rec = gate._recognizer
    ops = info.capabilities.operations
    if ops & {"verify", "identify", "enroll"}:
        report.add("declares embedding operations and has embed()", callable(getattr(rec, "embed", None)))
    if "analyze" in ops:
        report.add("declares analyze and has analyze()", callable(getattr(rec, "analyze", None)))
    faces_seen = False
    for i, image in enumerate(face_images):
        faces_seen = True
        _check_image(report, gate, rec, info, image, f"face image {i}", expect_faces=True)
    for i, image in enumerate(empty_images):
        _check_image(report, gate, rec, info, image, f"empty image {i}", expect_faces=False)
    if not faces_seen:
        report.add("face images given", False, "pass at least one image with a face")
    outcome = gate.process({"operation": "detect", "purpose": "other"}, np.zeros((32, 32, 3), np.uint8))
    report.add("the gate runs it without raising", outcome.status in ("executed", "error"), outcome.error or "")
    sample = next(iter(face_images), None) if isinstance(face_images, (list, tuple)) else None
    if sample is not None:  # a deadline far shorter than any real model: the gate must not wait it out
        quick = Gate(conformance_policy(), info.id, registry=registry, recognizer_config=config or {}, audit=MemoryAudit(), timeout=1e-4)
        out = quick.process({"operation": "detect", "purpose": "other"}, sample)
        honoured = out.status == "executed" or (out.status == "error" and "timeout" in (out.error or "") and out.result is None)
        report.add("timeouts are honoured (error outcome, no result)", honoured, f"{out.status}: {out.error}")
    return report


def _check_image(report: ConformanceReport, gate: Gate, rec: Any, info: RecognizerInfo, image: np.ndarray, label: str, *, expect_faces: bool) -> None:
    img = np.array(image[:, :, :3] if image.ndim == 3 else np.repeat(image[:, :, None], 3, 2), copy=True)
    img.flags.writeable = False
    call = _sandbox.guarded_call(rec.detect, (img,), gate.timeout)
    if call.timed_out or call.error is not None or call.violations:
        report.add(f"{label}: detect", False, "timed out" if call.timed_out else (str(call.error) or "; ".join(call.violations)))
        return
    faces = call.value
    problems = [p for p in (_face_problem(f, img.shape[1], img.shape[0]) for f in (faces if isinstance(faces, list) else [None])) if p]
    report.add(f"{label}: detect returns list[Face] within the image", isinstance(faces, list) and not problems, "; ".join(problems))
    report.add(f"{label}: {'finds a face' if expect_faces else 'finds no face'}", bool(faces) == expect_faces, f"found {len(faces) if isinstance(faces, list) else '?'}")
    if not (expect_faces and faces and isinstance(faces, list) and not problems):
        return
    if not info.capabilities.operations & {"verify", "identify", "enroll"}:
        return
    first = _sandbox.guarded_call(rec.embed, (img, faces[0]), gate.timeout)
    again = _sandbox.guarded_call(rec.embed, (img, faces[0]), gate.timeout)
    vec = first.value
    ok = first.error is None and not first.violations and isinstance(vec, np.ndarray) and vec.ndim == 1 and np.issubdtype(vec.dtype, np.floating) and bool(np.all(np.isfinite(vec)))
    report.add(f"{label}: embed returns a finite 1-D float vector", ok, str(first.error or first.violations or type(vec).__name__))
    if ok and info.embedding_size is not None:
        report.add(f"{label}: embedding size matches the declaration", vec.size == info.embedding_size, f"{vec.size} != {info.embedding_size}")
    if ok and isinstance(again.value, np.ndarray) and again.value.shape == vec.shape:
        report.add(f"{label}: embed is deterministic", bool(np.allclose(vec, again.value, atol=1e-5)))


def run_hostile_suite(make_gate: Callable[[str], Gate], *, image: np.ndarray | None = None) -> ConformanceReport:
    """Run the engine against every hostile recognizer; ``make_gate(recognizer_id)`` builds a gate.

    The request is permitted by the gate's policy (e.g. the conformance pack); every hostile
    behaviour must end in a contained outcome.
    """
    from ._hostile import HANG

    report = ConformanceReport("engine")
    img = image if image is not None else synthetic_face_image(1)
    analyze = {"operation": "analyze", "attributes": ["age"], "purpose": "other"}
    detect = {"operation": "detect", "purpose": "other"}

    out = make_gate("hostile-extra-attributes").process(analyze, img)
    result = out.result
    attrs = set().union(*(set(f.attributes) for f in result.faces)) if isinstance(result, AnalyzeResult) else {"?"}
    report.add("unrequested attributes never leave the gate", out.status == "executed" and attrs == {"age"}, f"{out.status} {attrs}")
    for rid, why in (("hostile-keeps-image", "kept a reference"), ("hostile-writes-image", "sandbox"), ("hostile-exfiltrates", "sandbox"),
                     ("hostile-raises", "failed in `detect`"), ("hostile-malformed", "malformed"), ("hostile-lies", "")):
        request = analyze if rid == "hostile-lies" else detect
        out = make_gate(rid).process(request, img)
        report.add(f"{rid}: error outcome without result", out.status == "error" and out.result is None and why in (out.error or ""), f"{out.status}: {out.error}")
    HANG.clear()
    try:
        gate = make_gate("hostile-hangs")
        out = gate.process(detect, img)
        report.add("hostile-hangs: timeout gives an error outcome", out.status == "error" and "timeout" in (out.error or ""), f"{out.status}: {out.error}")
    finally:
        HANG.set()
    return report
