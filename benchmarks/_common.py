"""What the benchmark scripts share: paths, the CAC-2023 case requests, spreads and decision timing.

``benchmarks/`` is not a package; the scripts import this module by name (their own folder is
on ``sys.path`` when run, and ``run.py`` puts it there).
"""

from __future__ import annotations

import gc
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
PACK = ROOT / "policies" / "cn-cac-2023-draft"

Request = Mapping[str, Any]


def case_requests() -> list[tuple[str, dict[str, Any]]]:
    """Every case request of the CAC-2023 pack, in file order: (case id, request)."""
    from facegate._cases import load_cases

    return [(case["id"], case["request"]) for case, _file, _line in load_cases(PACK)]


def load_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` under a private module name."""
    path = BENCH / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"facegate_benchmarks_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def backend_label(backend: str) -> str:
    if backend == "interpreter":
        return "facegate (cel-python interpreter)"
    if backend in ("native", "compiled"):
        return "facegate (compiled)"
    return f"facegate ({backend} backend)"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def time_decisions(call: Callable[[Request], Any], requests: Sequence[Request], effects: Sequence[str],
                   repeats: int, min_seconds: float) -> dict[str, Any]:
    """Time each call; each repeat passes over the request set until ``min_seconds`` have gone by."""
    runs = []
    for _ in range(repeats):
        gc.collect()
        samples: list[int] = []
        by_effect: dict[str, list[int]] = {"permit": [], "deny": []}
        started = time.perf_counter()
        passes = 0
        while True:
            for request, effect in zip(requests, effects):
                t0 = time.perf_counter_ns()
                call(request)
                dt = time.perf_counter_ns() - t0
                samples.append(dt)
                by_effect[effect].append(dt)
            passes += 1
            if time.perf_counter() - started >= min_seconds:
                break
        ordered = sorted(samples)
        mean_us = statistics.fmean(samples) / 1000
        runs.append({
            "median_us": statistics.median(ordered) / 1000,
            "p99_us": percentile(ordered, 0.99) / 1000,
            "per_second": 1e6 / mean_us,
            "permit_median_us": statistics.median(by_effect["permit"]) / 1000 if by_effect["permit"] else float("nan"),
            "deny_median_us": statistics.median(by_effect["deny"]) / 1000 if by_effect["deny"] else float("nan"),
            "decisions": len(samples),
            "passes": passes,
        })
    return {name: spread([r[name] for r in runs]) for name in runs[0]}


def fmt(s: Mapping[str, float], digits: int = 1) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"
