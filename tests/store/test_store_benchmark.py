"""benchmarks/store_backends.py runs on both backends (tiny sizes; no figure is asserted)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _bench(monkeypatch):
    """Imported by name (not from a file spec): its appender processes (spawn) import it again.
    sys.path is restored after the test."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])  # the module adds more; all undone after
    return importlib.import_module("store_backends")


def test_the_store_benchmark_runs_on_both_backends(backend, monkeypatch):
    bench = _bench(monkeypatch)
    appended = bench.appends(backend.target(), 2)
    assert appended["appends"] == bench.PROCESSES * bench.THREADS * 2 and appended["commits"] >= 1
    found = bench.identify(backend.target(), 300, 5)
    assert found["templates"] == 300
    erased = bench.erase_honoured(backend.target(), rounds=3)
    assert erased["rounds"] == 3 and erased["stale_identifies"] == 0
