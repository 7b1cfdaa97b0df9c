"""The output contract: decode a recognizer's plain-data answer into the gate's own result types.

Whatever a worker sends is untrusted.  Faces are rebuilt as :class:`~facegate.recognition.Face`
from three checked fields (anything else a plugin attached is dropped and noted), embeddings
must be finite float32 vectors of exactly the declared ``embedding_size``, attributes are cut to
what the decision approved, and a plugin's error text becomes a code plus a short masked message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..recognition import ATTRIBUTES, Face, RecognizerInfo

MAX_MESSAGE = 160
#: Long runs that look like data (hex, base64, number lists), masked out of any plugin text.
_DATA_RUN = re.compile(r"[0-9A-Fa-f]{16,}|[A-Za-z0-9+/=_-]{32,}|[-0-9.,;:\s\[\]()eE+x]{24,}")


class Refused(Exception):
    """Execution stopped; ``code`` and ``message`` go into the error outcome and its record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def masked(text: Any, limit: int = MAX_MESSAGE) -> str:
    """``text`` with data-like runs masked and clipped to ``limit`` characters, one line."""
    line = " ".join(str(text).split())
    line = _DATA_RUN.sub(lambda m: " […] " if m.group(0).strip() else m.group(0), line)
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass
class Decoded:
    """One request's recognizer output, as the gate's own types."""

    faces: list[list[Face]] = field(default_factory=list)  # per image
    embeddings: list[np.ndarray | None] = field(default_factory=list)  # per image (None: not asked / no face)
    attributes: list[dict[str, Any]] = field(default_factory=list)  # per face of the first image
    notes: list[str] = field(default_factory=list)


def decode(answer: Any, info: RecognizerInfo, op: str, wanted: frozenset[str], shapes: list[tuple[int, int]]) -> Decoded:
    rid = info.id
    if not isinstance(answer, dict):
        raise Refused("recognizer_malformed", f"recognizer `{rid}` answered out of contract")
    kept = answer.get("kept") is not False
    error = answer.get("error")
    if error is not None:
        raise _error(rid, error, kept)
    if kept:
        raise Refused("image_kept", "recognizer kept a reference to the image after the call; result withheld")
    images = answer.get("images")
    if not isinstance(images, list) or not 1 <= len(images) <= len(shapes):
        raise Refused("recognizer_malformed", f"recognizer `{rid}` answered out of contract (images)")
    out = Decoded()
    extra_fields = 0
    for entry, (h, w) in zip(images, shapes):
        if not isinstance(entry, dict) or not isinstance(entry.get("faces"), list):
            raise Refused("recognizer_malformed", f"recognizer `{rid}` answered out of contract (faces)")
        faces = []
        for item in entry["faces"]:
            face, extra = _face(rid, item, w, h)
            faces.append(face)
            extra_fields += extra
        out.faces.append(faces)
        vector = entry.get("embedding")
        out.embeddings.append(None if vector is None else embedding(info, vector))
        if op == "analyze" and not out.attributes:
            out.attributes = _attributes(rid, entry.get("attributes"), len(faces), wanted, out.notes)
    if extra_fields:
        out.notes.append(f"dropped {extra_fields} field(s) a Face does not carry (the recognizer returned a Face subclass)")
    return out


def _error(rid: str, error: Any, kept: bool) -> Refused:
    if not isinstance(error, dict):
        return Refused("recognizer_malformed", f"recognizer `{rid}` answered out of contract (error)")
    code = str(error.get("code")) if error.get("code") in ("recognizer_failed", "recognizer_malformed", "sandbox_violation") else "recognizer_failed"
    stage = error.get("stage") if error.get("stage") in ("detect", "embed", "analyze", "between calls", "after the call") else "?"
    if code == "sandbox_violation":
        return Refused(code, masked(f"recognizer `{rid}` broke the sandbox in `{stage}`: {error.get('message', '')}"))
    if code == "recognizer_malformed":
        return Refused(code, masked(f"recognizer `{rid}` returned malformed output in `{stage}`: {error.get('message', '')}"))
    kind = str(error.get("type", "Exception"))
    kind = kind if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,63}", kind) else "Exception"
    return Refused(code, masked(f"recognizer `{rid}` failed in `{stage}`: {kind}: {error.get('message', '')}"))


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError
    return float(value)


def _face(rid: str, item: Any, w: int, h: int) -> tuple[Face, int]:
    bad = f"recognizer `{rid}` returned a malformed face: "
    if not isinstance(item, dict) or item.get("kind") not in ("Face", "Face subclass"):
        kind = item.get("kind") if isinstance(item, dict) and isinstance(item.get("kind"), str) else "?"
        raise Refused("recognizer_malformed", bad + masked(f"`{kind}` is not a Face", 100))
    try:
        box = tuple(_num(v) for v in item["box"])
        score = _num(item["score"])
        marks = tuple((_num(a), _num(b)) for a, b in item["landmarks"])
        extra = int(item.get("extra", 0))
    except (KeyError, TypeError, ValueError):
        raise Refused("recognizer_malformed", bad + "non-numeric or non-finite box, score or landmarks") from None
    if len(box) != 4 or box[2] <= 0 or box[3] <= 0:
        raise Refused("recognizer_malformed", bad + "box is not a finite positive rectangle")
    x, y, bw, bh = box
    if x + bw < 0 or y + bh < 0 or x > w or y > h:
        raise Refused("recognizer_malformed", bad + f"box lies outside the {w}×{h} image")
    if not 0.0 <= score <= 1.0:
        raise Refused("recognizer_malformed", bad + f"score {score:g} is outside [0, 1]")
    if len(marks) not in (0, 5):
        raise Refused("recognizer_malformed", bad + "landmarks must be 0 or 5 finite points")
    return Face((x, y, bw, bh), score, marks), max(0, min(extra, 1000)) + (1 if item["kind"] != "Face" and extra == 0 else 0)


def embedding(info: RecognizerInfo, vector: Any) -> np.ndarray:
    """A finite float32 vector of the declared size (unit length for cosine), or :class:`Refused`."""
    rid, size = info.id, info.embedding_size
    if not isinstance(vector, dict) or vector.get("type") != "ndarray":
        kind = vector.get("type") if isinstance(vector, dict) and isinstance(vector.get("type"), str) else "?"
        raise Refused("recognizer_malformed", masked(f"recognizer `{rid}` returned a malformed embedding (`{kind}`, not a numpy array)"))
    if vector.get("ndim") != 1 or vector.get("dtype") != "f" or vector.get("size") != size or not isinstance(vector.get("f32"), bytes):
        raise Refused("recognizer_malformed", f"recognizer `{rid}` returned a malformed embedding: "
                      f"{vector.get('size')!s:.12} values of kind `{vector.get('dtype')!s:.4}`, declared {size} floats")
    values = vector["f32"]
    if size is None or len(values) != 4 * size:
        raise Refused("recognizer_malformed", f"recognizer `{rid}` returned a malformed embedding")
    out = np.frombuffer(values, dtype="<f4").astype(np.float32)  # the gate's own, writable copy
    with np.errstate(all="ignore"):  # an overflow is refused below, not warned about
        squares = float(np.dot(out, out))
    if not math.isfinite(squares):
        raise Refused("recognizer_malformed", f"recognizer `{rid}` returned a non-finite embedding")
    if info.metric == "cosine":
        if squares == 0.0:
            raise Refused("recognizer_malformed", f"recognizer `{rid}` returned a zero embedding")
        out /= math.sqrt(squares)
    return out


def _attributes(rid: str, items: Any, count: int, wanted: frozenset[str], notes: list[str]) -> list[dict[str, Any]]:
    if not isinstance(items, list) or len(items) != count:
        raise Refused("recognizer_malformed", f"recognizer `{rid}` returned malformed analyze output")
    out: list[dict[str, Any]] = []
    named: set[str] = set()
    others = 0
    for attrs in items:
        if not isinstance(attrs, dict) or "__type__" in attrs:
            kind = attrs.get("__type__") if isinstance(attrs, dict) else "?"
            raise Refused("recognizer_malformed", masked(f"recognizer `{rid}` returned malformed analyze output `{kind}`"))
        for key in set(attrs) - wanted:
            if key in ATTRIBUTES:
                named.add(key)
            else:
                others += 1
        out.append({k: _value(attrs[k], 3) for k in sorted(wanted) if k in attrs})
    if named or others:
        more = f" and {others} other key(s)" if others else ""
        notes.append(f"dropped attributes the decision did not approve: {sorted(named)}{more}")
    return out


def _value(value: Any, depth: int) -> Any:
    """An attribute value as bounded plain data: scalars, short strings, small lists and maps."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:200]
    if depth <= 0:
        return None
    if isinstance(value, list):
        return [_value(v, depth - 1) for v in value[:32]]
    if isinstance(value, dict):
        return {str(k)[:64]: _value(v, depth - 1) for k, v in list(value.items())[:32]}
    return None
