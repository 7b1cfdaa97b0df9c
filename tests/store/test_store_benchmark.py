"""benchmarks/store_backends.py runs on both backends (tiny sizes; no figure is asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "store_backends.py"


def _bench():
    spec = importlib.util.spec_from_file_location("store_backends", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_store_benchmark_runs_on_both_backends(backend):
    bench = _bench()
    appended = bench.appends(backend.target(), 2)
    assert appended["appends"] == bench.PROCESSES * bench.THREADS * 2 and appended["commits"] >= 1
    found = bench.identify(backend.target(), 300, 5)
    assert found["templates"] == 300
    erased = bench.erase_honoured(backend.target(), rounds=3)
    assert erased["rounds"] == 3 and erased["stale_identifies"] == 0
