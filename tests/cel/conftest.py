"""Test setup for facegate.cel: import paths and hypothesis settings."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hypothesis

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "engine", ROOT / "benchmarks", Path(__file__).resolve().parent):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

# cel-python logs (and sometimes fails to format) the errors the differential provokes.
logging.getLogger("celpy").setLevel(logging.CRITICAL)

# Deterministic example generation: CI runs are reproducible and never flaky.
hypothesis.settings.register_profile(
    "cel", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large],
)
hypothesis.settings.load_profile("cel")
