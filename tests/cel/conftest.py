"""Test setup for facegate.cel: helper modules and the benchmark's conditions."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for extra in (ROOT / "engine", HERE):  # engine/: when facegate is not installed
    if str(extra) not in sys.path:
        sys.path.append(str(extra))

# The differential test checks the benchmark's 25 conditions: load that one file by path
# rather than putting benchmarks/ on sys.path.
if "cel_expressions" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "cel_expressions", ROOT / "benchmarks" / "cel_expressions.py"
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["cel_expressions"] = _module
    _spec.loader.exec_module(_module)

# cel-python logs (and sometimes fails to format) the errors the differential provokes.
logging.getLogger("celpy").setLevel(logging.CRITICAL)
