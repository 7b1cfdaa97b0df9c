"""One CAC-2023 decision, timed right after different kinds of other work.

    .venv/bin/python benchmarks/cold_decision.py [--calls 25]

Inside the gate, ``decide`` runs right after ~50 ms of recognizer work and measures about ten
times its back-to-back figure.  This run separates the causes: what the decision costs after
nothing (back to back), after busy Python of 5 and 50 ms, after sleeping 1 and 50 ms, and after
reading 128 MB of memory.  Ratios are to the back-to-back median, measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
from _common import PACK, case_requests


def _busy(seconds: float) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pass


def main() -> int:
    import facegate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=25, help="timed decisions per condition")
    args = parser.parse_args()
    request = next(r for rid, r in case_requests() if rid == "bank-verifies-customer-with-separate-consent")
    policy = facegate.load_policy(PACK)
    memory = np.random.default_rng(0).random((4000, 4000))  # 128 MB
    before: dict[str, Callable[[], object]] = {
        "back to back": lambda: None,
        "after 5 ms of busy Python": lambda: _busy(0.005),
        "after 50 ms of busy Python": lambda: _busy(0.05),
        "after sleeping 1 ms": lambda: time.sleep(0.001),
        "after sleeping 50 ms": lambda: time.sleep(0.05),
        "after reading 128 MB": lambda: memory.sum(),
    }
    for _ in range(50):
        policy.decide(request)
    medians = {}
    for name, work in before.items():
        samples = []
        for _ in range(args.calls):
            work()
            t0 = time.perf_counter()
            policy.decide(request)
            samples.append((time.perf_counter() - t0) * 1e6)
        medians[name] = statistics.median(samples)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; {args.calls} decisions each, medians")
    base = medians["back to back"]
    for name, value in medians.items():
        print(f"  {name:<28} {value:8.1f} µs  {value / base:6.1f} ×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
