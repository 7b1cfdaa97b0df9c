"""Testing helpers that ship with facegate: a fake recognizer, hostile recognizers, an in-memory
audit log, and the vendor conformance kit.  For tests only -- never the main job's recognizer.
"""

from __future__ import annotations

from ._conformance import ConformanceReport, check_observer, check_recognizer, run_hostile_suite, shipped_pairs
from ._fake import (
    FakeRecognizer,
    MemoryAudit,
    fake_info,
    fake_plugin,
    synthetic_face_image,
)
from ._hostile import HOSTILE, hostile_plugin

__all__ = [
    "HOSTILE",
    "ConformanceReport",
    "FakeRecognizer",
    "MemoryAudit",
    "check_observer",
    "check_recognizer",
    "fake_info",
    "fake_plugin",
    "hostile_plugin",
    "run_hostile_suite",
    "shipped_pairs",
    "synthetic_face_image",
]
