"""The recognizer side of one request: call the plugin, turn whatever it returns into plain data.

Runs where the recognizer runs (in a worker process, or in-process for ``isolation: none``).
Nothing here is trusted by the gate: a plugin in the same process can change any of it, so the
gate decodes and checks the plain data again (:mod:`._contract`).  This side only makes sure
that no object of the plugin's leaves: faces become number lists, embeddings float32 bytes,
attributes JSON scalars, errors a type name and a clipped message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_FACES = 256
MAX_EMBEDDING = 4096
MAX_TEXT = 2000
FACE_FIELDS = ("box", "score", "landmarks")


class Stop(Exception):
    """The request cannot go on; ``info`` is the plain-data reason."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info.get("message", ""))
        self.info = info


def run(recognizer: Any, op: str, wanted: list[str], images: list[np.ndarray], violations: list[str]) -> dict[str, Any]:
    """Run ``op``'s recognizer work on ``images``; return plain data (never raises)."""
    out: dict[str, Any] = {"images": [], "error": None, "spent": 0.0}
    stage = ["detect"]
    started = time.perf_counter()
    try:
        for index, image in enumerate(images):
            entry: dict[str, Any] = {}
            out["images"].append(entry)
            faces = _call(recognizer, "detect", stage, violations, image)
            entry["faces"] = encoded = _faces(faces)
            if op == "detect":
                continue
            if op == "analyze":
                entry["attributes"] = [_attributes(_call(recognizer, "analyze", stage, violations, image, f, frozenset(wanted)))
                                       for f in faces[: len(encoded)]]
                continue
            if encoded and (index == 0 or op == "verify"):
                entry["embedding"] = _embedding(_call(recognizer, "embed", stage, violations, image, _largest(faces)))
            if index == 0 and not encoded:
                break  # no face in the probe image: the reference is not looked at
    except Stop as stop:
        out["error"] = stop.info
    out["spent"] = time.perf_counter() - started  # seconds on the recognizer's side (benchmarks read it; the gate does not)
    return out


def _call(recognizer: Any, method: str, stage: list[str], violations: list[str], *args: Any) -> Any:
    fn = getattr(recognizer, method, None)
    if not callable(fn):
        raise Stop({"code": "recognizer_malformed", "stage": method, "message": f"declares it but has no `{method}`"})
    stage[0], seen = method, len(violations)
    try:
        value = fn(*args)
    except BaseException as exc:  # a recognizer's failure is data, not a crash
        exc.__traceback__ = None  # its frames would keep the image alive
        raise Stop({"code": "recognizer_failed", "stage": method, "type": type(exc).__name__[:64],
                    "message": _text(exc)}) from None
    finally:
        del args
    if len(violations) > seen:  # even if the recognizer swallowed the refusal
        raise Stop({"code": "sandbox_violation", "stage": method, "message": "; ".join(violations[seen:])[:MAX_TEXT]})
    return value


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:MAX_TEXT]
    except Exception:
        return "(unprintable)"


def _faces(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, (list, tuple)):
        raise Stop({"code": "recognizer_malformed", "stage": "detect", "message": f"detect returned `{type(value).__name__[:64]}`, not a list"})
    if len(value) > MAX_FACES:
        raise Stop({"code": "recognizer_malformed", "stage": "detect", "message": f"detect returned {len(value)} faces (at most {MAX_FACES})"})
    return [_face(f) for f in value]


def _face(f: Any) -> dict[str, Any]:
    from ..recognition import Face

    kind = "Face" if type(f) is Face else ("Face subclass" if isinstance(f, Face) else type(f).__name__[:64])
    if not isinstance(f, Face):
        return {"kind": kind}
    try:
        box = [float(v) for v in f.box][:5]
        score = float(f.score)
        marks = [[float(a), float(b)] for a, b in list(f.landmarks)[:6]]
    except (TypeError, ValueError):
        return {"kind": kind, "malformed": True}
    names = set(getattr(f, "__dict__", {}) or {}) | {getattr(x, "name", "") for x in getattr(type(f), "__dataclass_fields__", {}).values()}
    return {"kind": kind, "box": box, "score": score, "landmarks": marks, "extra": len(names - set(FACE_FIELDS) - {""})}


def _largest(faces: Any) -> Any:
    return max(faces, key=lambda f: float(f.box[2]) * float(f.box[3]))


def _embedding(vec: Any) -> dict[str, Any]:
    """An embedding's shape facts, and its values as little-endian float32 bytes (a float that
    overflows float32 becomes infinite here, and the gate refuses it)."""
    if not isinstance(vec, np.ndarray):
        return {"type": type(vec).__name__[:64]}
    info: dict[str, Any] = {"type": "ndarray", "dtype": vec.dtype.kind, "ndim": int(vec.ndim), "size": int(vec.size)}
    if vec.ndim == 1 and vec.dtype.kind == "f" and 0 < vec.size <= MAX_EMBEDDING:
        with np.errstate(all="ignore"):
            info["f32"] = np.asarray(vec, dtype="<f4").tobytes()
    return info


def _attributes(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return {"__type__": type(value).__name__[:64]}
    return {str(k)[:64]: _plain(v, 3) for k, v in list(value.items())[:64]}


def _plain(value: Any, depth: int) -> Any:
    if isinstance(value, (bool, int)) and not isinstance(value, np.generic):
        return value if isinstance(value, bool) or abs(value) < 2**53 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:200]
    if isinstance(value, np.generic):
        return _plain(value.item(), depth)
    if value is None or depth <= 0:
        return None
    if isinstance(value, Mapping):
        return {str(k)[:64]: _plain(v, depth - 1) for k, v in list(value.items())[:32]}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth - 1) for v in list(value)[:32]]
    return str(type(value).__name__)[:64]
