"""A dependency-free, deterministic fake recognizer and an in-memory audit log (tests only)."""

from __future__ import annotations

import hashlib
import json
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..hookspecs import hookimpl
from ..recognition import Capabilities, Face, RecognizerInfo


def synthetic_face_image(seed: int = 0, size: int = 96, faces: int = 1) -> np.ndarray:
    """An RGB image the fake recognizer sees ``faces`` faces in (bright squares on black).

    The square's texture depends on ``seed``: the same seed is "the same person".
    """
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size * max(faces, 1), 3), dtype=np.uint8)
    texture = rng.integers(128, 256, size=(size // 2, size // 2, 3), dtype=np.uint8)
    for i in range(faces):
        x0 = i * size + size // 4
        img[size // 4 : size // 4 + size // 2, x0 : x0 + size // 2] = texture
    return img


class FakeRecognizer:
    """Finds bright (>= 128) connected column bands as faces; embeds by block means.

    Deterministic and dependency-free: same pixels, same template.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.size = int(config.get("embedding_size", 64))

    def detect(self, image: np.ndarray) -> list[Face]:
        bright = image.max(axis=2) >= 128
        cols = np.flatnonzero(bright.any(axis=0))
        if cols.size == 0:
            return []
        faces = []
        runs = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
        for run in runs:
            rows = np.flatnonzero(bright[:, run[0] : run[-1] + 1].any(axis=1))
            x, y, w, h = float(run[0]), float(rows[0]), float(run.size), float(rows.size)
            marks = ((x + w * 0.3, y + h * 0.4), (x + w * 0.7, y + h * 0.4), (x + w * 0.5, y + h * 0.6), (x + w * 0.35, y + h * 0.8), (x + w * 0.65, y + h * 0.8))
            faces.append(Face((x, y, w, h), 0.99, marks))
        return faces

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        x, y, w, h = (int(round(v)) for v in face.box)
        crop = image[y : y + h, x : x + w].astype(np.float32)
        side = int(np.sqrt(self.size // 4)) or 1
        ys = np.array_split(np.arange(crop.shape[0]), side)
        xs = np.array_split(np.arange(crop.shape[1]), side)
        feats = [crop[np.ix_(r, c)].mean(axis=(0, 1)) for r in ys for c in xs]
        feat = np.concatenate(feats)
        feat = feat - feat.mean()
        return np.concatenate([feat, np.ones(self.size)])[: self.size].astype(np.float32)

    def analyze(self, image: np.ndarray, face: Face, attributes: frozenset[str]) -> dict[str, Any]:
        digest = hashlib.sha256(image[int(face.box[1]), :, 0].tobytes()).digest()
        return {a: {"age": 20 + digest[0] % 50, "emotion": "neutral"}.get(a, "unknown") for a in attributes}


def fake_info(recognizer_id: str = "fake", *, attributes: frozenset[str] = frozenset({"age", "emotion"}),
              factory: Callable[[Mapping[str, Any]], Any] = FakeRecognizer, embedding_size: int = 64) -> RecognizerInfo:
    return RecognizerInfo(
        id=recognizer_id,
        version="1.0",
        capabilities=Capabilities(frozenset({"detect", "verify", "identify", "enroll", "analyze"}), attributes),
        factory=factory,
        config_schema={"type": "object", "additionalProperties": False, "properties": {"embedding_size": {"type": "integer", "minimum": 4}}},
        metric="cosine",
        threshold=0.9,
        embedding_size=embedding_size,
        description="deterministic fake for tests",
    )


def fake_plugin(*infos: RecognizerInfo) -> types.ModuleType:
    """A plugin object registering ``infos`` (default: the fake recognizer), for ``load_registry(extra=...)``."""
    chosen = infos or (fake_info(),)

    @hookimpl
    def register_recognizers(register: Callable[[RecognizerInfo], None]) -> None:
        for info in chosen:
            register(info)

    plugin = types.ModuleType("facegate_test_plugin")
    plugin.register_recognizers = register_recognizers  # type: ignore[attr-defined]
    return plugin


class MemoryAudit:
    """An in-memory audit log with the gate's ``append`` contract; can be told to fail."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail: Exception | None = None
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> int:
        if self.fail is not None:
            raise self.fail
        text = json.dumps(record, sort_keys=True, default=str)  # what a durable log would serialise
        with self._lock:
            self.records.append(json.loads(text))
            return len(self.records)
