"""The two-stage recognizer both runtimes share: letterbox -> detector -> decode -> NMS, and
5-point alignment -> recognizer.  A runtime plugin supplies only the two :class:`Runner`s."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from facegate.recognition import Capabilities, Face, Recognizer, RecognizerInfo

from ._files import SFACE, YUNET, ModelFile, ModelFileError, default_path, prepare
from ._vision import (
    ARCFACE_SIZE,
    align,
    as_rgb,
    decode_scrfd,
    decode_yunet,
    letterbox,
    nms,
    to_blob,
)

#: SFace's published same-person threshold on cosine similarity (OpenCV Zoo).
SFACE_COSINE_THRESHOLD = 0.363
SFACE_EMBEDDING_SIZE = 128
OPERATIONS = frozenset({"detect", "verify", "identify", "enroll"})

_SHA256 = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}
_PATH = {"type": "string", "minLength": 1}

#: Operator configuration shared by both runtimes; every key is optional.
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "detector_path": {**_PATH, "description": "ONNX face detector; default: YuNet 2023mar"},
        "detector_sha256": {
            **_SHA256,
            "description": "refuse the detector unless it has this sha256",
        },
        "detector_format": {
            "enum": ["yunet", "scrfd"],
            "default": "yunet",
            "description": "output layout: OpenCV-Zoo YuNet, or insightface SCRFD with landmarks",
        },
        "detector_input_size": {
            "type": "integer",
            "minimum": 64,
            "maximum": 2048,
            "multipleOf": 32,
            "default": 640,
            "description": "square letterbox side, for detectors with a dynamic input shape",
        },
        "score_threshold": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "minimum detector score; default 0.9 for YuNet, 0.5 for SCRFD",
        },
        "nms_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.3},
        "recognizer_path": {
            **_PATH,
            "description": "ONNX ArcFace-style recognizer (112x112 aligned crop); default: SFace",
        },
        "recognizer_sha256": {
            **_SHA256,
            "description": "refuse the recognizer unless it has this sha256",
        },
        "recognizer_mean": {
            "type": "number",
            "default": 0,
            "description": "subtracted from 0-255 pixels (ArcFace: 127.5)",
        },
        "recognizer_std": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 1,
            "description": "divides pixels after the mean (ArcFace: 127.5)",
        },
        "recognizer_channels": {"enum": ["rgb", "bgr"], "default": "rgb"},
        "threads": {
            "type": "integer",
            "minimum": 1,
            "maximum": 256,
            "description": "intra-op threads; default: the runtime's",
        },
        "cache_dir": {
            **_PATH,
            "description": "where rewritten models are cached; default $XDG_CACHE_HOME/facegate/models",
        },
    },
}


class Runner(Protocol):
    """One compiled network, as a runtime plugin wraps it."""

    path: Path  # the file it was loaded from, named in errors
    input_shape: tuple[int | None, ...]  # NCHW; None where the dimension is dynamic
    output_names: tuple[str, ...]

    def __call__(self, blob: np.ndarray) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class Settings:
    """An operator configuration with every default filled in and the model files prepared."""

    detector_path: Path
    recognizer_path: Path
    detector_format: str = "yunet"
    detector_input_size: int = 640
    score_threshold: float = 0.9
    nms_threshold: float = 0.3
    recognizer_mean: float = 0.0
    recognizer_std: float = 1.0
    recognizer_bgr: bool = False
    threads: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Verify (and if needed rewrite and cache) the model files the configuration names."""
        cache = Path(config["cache_dir"]).expanduser() if "cache_dir" in config else None
        detector_format = str(config.get("detector_format", "yunet"))
        return cls(
            detector_path=_model(config, "detector", YUNET, cache),
            recognizer_path=_model(config, "recognizer", SFACE, cache),
            detector_format=detector_format,
            detector_input_size=int(config.get("detector_input_size", 640)),
            score_threshold=float(
                config.get("score_threshold", 0.9 if detector_format == "yunet" else 0.5)
            ),
            nms_threshold=float(config.get("nms_threshold", 0.3)),
            recognizer_mean=float(config.get("recognizer_mean", 0.0)),
            recognizer_std=float(config.get("recognizer_std", 1.0)),
            recognizer_bgr=config.get("recognizer_channels", "rgb") == "bgr",
            threads=int(config["threads"]) if "threads" in config else None,
        )


def _model(config: Mapping[str, Any], role: str, default: ModelFile, cache: Path | None) -> Path:
    given = config.get(f"{role}_path")
    if given is None:  # the default file is always held to its pinned checksum
        return prepare(default_path(default), default.sha256, cache)
    return prepare(Path(given).expanduser(), config.get(f"{role}_sha256"), cache)


class ZooRecognizer:
    """Detect with YuNet or SCRFD, embed with an ArcFace-style network, on any runtime."""

    def __init__(self, settings: Settings, detector: Runner, recognizer: Runner) -> None:
        self.settings = settings
        self._detector = detector
        self._recognizer = recognizer
        height, width = (
            detector.input_shape[2:4] if len(detector.input_shape) == 4 else (None, None)
        )
        self._width = width or settings.detector_input_size
        self._height = height or settings.detector_input_size
        expected = (9, 15) if settings.detector_format == "scrfd" else (12,)
        if len(detector.output_names) not in expected:
            raise ModelFileError(
                detector.path,
                f"has {len(detector.output_names)} outputs; a `{settings.detector_format}` "
                f"detector has {' or '.join(map(str, expected))}",
            )
        # One run each on a black input: a model that loads but cannot run (ONNX Runtime accepts
        # the unrewritten YuNet and fails only on inference) is refused now, not mid-request.
        _smoke(detector, (1, 3, self._height, self._width))
        _smoke(recognizer, (1, 3, ARCFACE_SIZE, ARCFACE_SIZE))

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = as_rgb(image)
        canvas, scale = letterbox(rgb, self._width, self._height)
        s = self.settings
        if s.detector_format == "scrfd":
            outputs = self._detector(to_blob(canvas, bgr=False, mean=127.5, std=128.0))
            boxes, scores, points = decode_scrfd(
                outputs, self._width, self._height, s.score_threshold
            )
        else:
            outputs = self._detector(to_blob(canvas, bgr=True))
            boxes, scores, points = decode_yunet(
                outputs, self._detector.output_names, self._width, self._height, s.score_threshold
            )
        height, width = rgb.shape[:2]
        faces = []
        for i in nms(boxes, scores, s.nms_threshold):
            x1, y1, x2, y2 = (boxes[i] / scale).tolist()
            x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            landmarks = tuple((float(x), float(y)) for x, y in points[i] / scale)
            faces.append(Face((x1, y1, x2 - x1, y2 - y1), min(float(scores[i]), 1.0), landmarks))
        return faces

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        if len(face.landmarks) != 5:
            raise ValueError("embed needs a face with the 5 landmarks detect() returns")
        crop = align(as_rgb(image), np.asarray(face.landmarks, np.float64))
        s = self.settings
        blob = to_blob(crop, bgr=s.recognizer_bgr, mean=s.recognizer_mean, std=s.recognizer_std)
        return np.ascontiguousarray(self._recognizer(blob)[0].reshape(-1), dtype=np.float32)


def _smoke(runner: Runner, shape: tuple[int, ...]) -> None:
    try:
        outputs = runner(np.zeros(shape, np.float32))
    except Exception as exc:  # runtimes raise their own exception types
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        problem = f"does not run: {lines[0] if lines else type(exc).__name__}"
        raise ModelFileError(runner.path, problem) from exc
    if not outputs or not all(np.size(o) for o in outputs):
        raise ModelFileError(runner.path, "does not run: it returned no output")


def recognizer_info(
    id: str,
    version: str,
    factory: Callable[[Mapping[str, Any]], Recognizer],
    description: str,
    extra_properties: Mapping[str, Any] | None = None,
) -> RecognizerInfo:
    """The registration shared by the runtimes: SFace's metric, threshold and size by default."""
    schema = {
        **CONFIG_SCHEMA,
        "properties": {**CONFIG_SCHEMA["properties"], **(extra_properties or {})},
    }
    return RecognizerInfo(
        id=id,
        version=version,
        capabilities=Capabilities(operations=OPERATIONS),
        factory=factory,
        config_schema=schema,
        metric="cosine",
        threshold=SFACE_COSINE_THRESHOLD,
        embedding_size=SFACE_EMBEDDING_SIZE,
        description=description,
    )
