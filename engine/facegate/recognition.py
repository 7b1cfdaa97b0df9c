"""The typed data model shared by the gate and recognizer plugins.

A recognizer does the two things only a model can do -- find faces (``detect``) and turn
a face into a template vector (``embed``) -- plus, optionally, ``analyze`` for the
attributes it declares.  Everything built from those (1:1 verify, 1:N identify, enroll)
is composed by the gate, so a plugin cannot widen what a decision approved.

Images are ``numpy.ndarray`` of dtype ``uint8``, shape ``(H, W, 3)`` in **RGB** order
(or ``(H, W)`` grayscale, which the gate converts to RGB before a recognizer sees it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from . import _vocabulary

#: Operations a request may ask for and a recognizer may declare (the core's, less ``erase``).
OPERATIONS: tuple[str, ...] = tuple(op for op in _vocabulary.OPERATIONS if op != "erase")
#: Attributes an ``analyze`` request may name (the core request envelope's).
ATTRIBUTES: tuple[str, ...] = _vocabulary.ATTRIBUTES

Metric = Literal["cosine", "euclidean"]


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face, in pixel coordinates of the image it was found in."""

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float  # detector confidence in [0, 1]
    landmarks: tuple[tuple[float, float], ...] = ()  # 5 points: r-eye, l-eye, nose, r-mouth, l-mouth


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a recognizer can do; the gate never asks for anything outside this."""

    operations: frozenset[str]
    attributes: frozenset[str] = frozenset()


@runtime_checkable
class Recognizer(Protocol):
    """The instance a plugin's factory returns.

    ``embed`` must return a 1-D float32 vector; for ``metric == "cosine"`` the gate
    L2-normalises it.  ``threshold`` is the model's published same-person threshold
    (cosine similarity above it, or euclidean distance below it).
    """

    def detect(self, image: np.ndarray) -> list[Face]: ...

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray: ...


@dataclass(frozen=True)
class RecognizerInfo:
    """What a plugin registers through ``register_recognizers(register)``.

    ``factory(config)`` builds a :class:`Recognizer` from an operator configuration
    that has already been validated against ``config_schema``.
    """

    id: str
    version: str
    capabilities: Capabilities
    factory: Callable[[Mapping[str, Any]], Recognizer]
    config_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    metric: Metric = "cosine"
    threshold: float = 0.5
    embedding_size: int | None = None
    description: str = ""


# -- typed results the gate returns (nothing else leaves the gate) ----------------------------


@dataclass(frozen=True, slots=True)
class DetectResult:
    faces: tuple[Face, ...]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    same_person: bool
    score: float | None  # cosine similarity or euclidean distance; None when no face was found
    threshold: float
    metric: Metric
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    subject_id: str
    score: float


@dataclass(frozen=True, slots=True)
class IdentifyResult:
    matches: tuple[Match, ...]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EnrollResult:
    template_id: str
    subject_id: str
    retention_days: int | None
    location: str


@dataclass(frozen=True, slots=True)
class FaceAttributes:
    face: Face
    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AnalyzeResult:
    faces: tuple[FaceAttributes, ...]


@dataclass(frozen=True, slots=True)
class EraseResult:
    erased: int


Result = DetectResult | VerifyResult | IdentifyResult | EnrollResult | AnalyzeResult | EraseResult
