"""What the benchmark scripts share: paths, the CAC-2023 case requests, spreads, decision timing, and
the gate benchmarks' request, photographs, direct recognizer call and timing in blocks.

``benchmarks/`` is not a package; the scripts import this module by name (their own folder is
on ``sys.path`` when run, and ``run.py`` puts it there).
"""

from __future__ import annotations

import gc
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
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


# -- the gate benchmarks (gate_overhead.py, gate_isolated.py) -----------------------------------------

GATE_PHOTOS = ("obama.jpg", "obama2.jpg")
GATE_REQUEST = "bank-verifies-customer-with-separate-consent"  # a permitted verify 1:1 against a reference photo


@dataclass
class GateSetup:
    """The request, the two photos, the registry and pack, and one ONNX recognizer instance for every row.

    One instance, because each ONNX Runtime session has its own thread pool and several sessions
    on two cores slow each other down, which would be measured as gate overhead: in-process gates
    are given this same instance (``gate._runner.recognizer = setup.direct``).
    """

    request: dict[str, Any]
    image: Any
    reference: Any
    registry: Any
    policy: Any
    direct: Any
    faces: Path

    def call_direct(self) -> float:
        """Detect + embed on both photos on this thread, and the cosine: the baseline row."""
        import numpy as np

        vector = self.direct.embed(self.image, _largest(self.direct.detect(self.image)))
        ref_vector = self.direct.embed(self.reference, _largest(self.direct.detect(self.reference)))
        return float(vector @ ref_vector / np.linalg.norm(vector) / np.linalg.norm(ref_vector))


def _largest(faces: Sequence[Any]) -> Any:
    return max(faces, key=lambda f: f.box[2] * f.box[3])


def gate_setup(photos: Sequence[str] = GATE_PHOTOS) -> GateSetup | dict[str, str]:
    """What both gate benchmarks need, or the ``{"status", "note"}`` saying why they cannot run here."""
    if importlib.util.find_spec("facegate_onnx") is None:
        return {"status": "not installed", "note": "facegate-onnx (the default recognizer) is not installed"}
    import facegate_onnx

    import facegate

    backends = load_script("backends")
    if not all((backends.FACES / p).exists() for p in photos):
        return {"status": "no photos", "note": f"the photographs are not in `{backends.FACES}` (set FACEGATE_FACES)"}
    image, reference = (backends.read(p) for p in photos)
    request = next(r for rid, r in case_requests() if rid == GATE_REQUEST)
    registry = facegate.load_plugins(["onnx"])
    policy = facegate.load_policy(PACK, functions=registry.functions)  # the default (compiled) backend
    return GateSetup(request, image, reference, registry, policy, facegate_onnx.make({}), backends.FACES)


def time_in_blocks(rows: Mapping[str, Callable[[], Any]], *, rounds: int, block: int, repeats: int, settle: bool = True,
                   seen: Callable[[str, Any], None] | None = None) -> Iterator[dict[str, list[float]]]:
    """Per repeat, as it ends: each row's figure (ms) for each round.

    Each round visits the rows in a fresh random order (seeded); each visit makes one unmeasured
    call (``settle``: lets the runtime settle on this row's thread), then ``block`` timed calls
    whose median is the row's figure for the round.  ``seen(row, value)`` gets what each timed
    call returned.
    """
    order = random.Random(2023)
    for _ in range(repeats):
        per_round: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(rounds):
            names = list(rows)
            order.shuffle(names)
            for name in names:
                if settle:
                    rows[name]()
                timed: list[float] = []
                for _ in range(block):
                    t0 = time.perf_counter()
                    value = rows[name]()
                    timed.append((time.perf_counter() - t0) * 1000)
                    if seen is not None:
                        seen(name, value)
                per_round[name].append(statistics.median(timed))
        yield per_round


class Timed:
    """A thin proxy adding up the wall time spent inside the wrapped object's calls."""

    def __init__(self, inner: Any, methods: Sequence[str]) -> None:
        self.inner, self.spent = inner, 0.0
        for method in methods:
            setattr(self, method, self._timed(getattr(inner, method)))

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.spent += time.perf_counter() - t0
        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
