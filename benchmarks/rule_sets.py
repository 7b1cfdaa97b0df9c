"""The per-operation rule-set function: exact (any activation) vs optimistic (validated request).

    .venv/bin/python benchmarks/rule_sets.py [--quick] [--json]

On the CAC-2023 pack's 91 case requests, each operation's generated function
(:mod:`facegate.cel._shared`) is timed against the optimistic twin ``Policy.decide`` runs
(:mod:`facegate.cel._optimistic`: the fast function, falling back to the exact one when it
raises), interleaved in blocks of passes over all requests, both with a fresh decision budget
as ``decide`` gives them.  Reported: the median per call over all (request, block) samples of each,
their ratio (in the same run), how many requests fall back, and the spread over repeats; then
``Policy.decide`` itself on the same requests with each operation's exact function swapped in
and with the optimistic one (its default), interleaved the same way.
Nothing is asserted here; tests/test_optimistic.py checks that both give the same results.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT / "engine", ROOT / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from _common import PACK, case_requests, spread  # noqa: E402

import facegate  # noqa: E402
from facegate import _compile  # noqa: E402


def measure(repeats: int, passes: int) -> dict[str, object]:
    policy = facegate.load_policy(PACK)
    procedure = policy._procedure
    procedure.prepare()
    calls = []
    fell_back = 0
    for _, request in case_requests():
        assert not procedure.violations(request), "a case request the schema rejects"
        rule_set = procedure._sets[request["operation"]]
        activation = {"params": procedure.params, "request": request}
        exact, fast = rule_set.run(activation, _compile.new_budget()), rule_set.fast_run(activation, _compile.new_budget())
        assert repr(exact) == repr(fast), request
        try:
            rule_set.fast(activation, _compile.new_budget())  # the fast function alone
        except Exception:  # noqa: BLE001 - counted: these requests are decided by the exact function
            fell_back += 1
        calls.append((rule_set.run, rule_set.fast_run, activation))
    rows: dict[str, list[float]] = {"exact": [], "optimistic": []}
    medians: dict[str, list[float]] = {"exact": [], "optimistic": []}
    new_budget = _compile.new_budget
    for _ in range(repeats):
        gc.collect()
        samples: dict[str, list[float]] = {"exact": [], "optimistic": []}
        for block in range(passes):
            order = ("exact", "optimistic") if block % 2 == 0 else ("optimistic", "exact")
            for name in order:
                slot = 0 if name == "exact" else 1
                timed = samples[name]
                for call in calls:
                    run, activation = call[slot], call[2]
                    budget = new_budget()
                    t0 = time.perf_counter_ns()
                    run(activation, budget)
                    timed.append((time.perf_counter_ns() - t0) / 1000)
        for name in rows:
            medians[name].append(statistics.median(samples[name]))
            rows[name] += samples[name]
    ratios = [e / o for e, o in zip(medians["exact"], medians["optimistic"], strict=True)]
    decide = _decide_medians(policy, repeats, max(2, passes // 4))
    return {
        "requests": len(calls),
        "fell_back": fell_back,
        "exact_median_us": spread(medians["exact"]),
        "optimistic_median_us": spread(medians["optimistic"]),
        "speedup": spread(ratios),
        "decide_exact_median_us": spread(decide["exact"]),
        "decide_optimistic_median_us": spread(decide["optimistic"]),
        "decide_speedup": spread([e / o for e, o in zip(decide["exact"], decide["optimistic"], strict=True)]),
    }


def _decide_medians(policy: facegate.Policy, repeats: int, passes: int) -> dict[str, list[float]]:
    """``Policy.decide`` (validation and the Decision included) with each operation's exact
    function swapped in, and with the optimistic one it runs by default: interleaved passes."""
    procedure = policy._procedure
    runs = {"exact": {op: s.run for op, s in procedure._sets.items()}, "optimistic": dict(procedure._runs)}
    requests = [r for _, r in case_requests()]
    medians: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        gc.collect()
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for block in range(passes):
            for name in (("exact", "optimistic") if block % 2 == 0 else ("optimistic", "exact")):
                procedure._runs.update(runs[name])
                timed = samples[name]
                for request in requests:
                    t0 = time.perf_counter_ns()
                    policy.decide(request)
                    timed.append((time.perf_counter_ns() - t0) / 1000)
        for name in runs:
            medians[name].append(statistics.median(samples[name]))
    procedure._runs.update(runs["optimistic"])
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 20 passes (default: 7 of 60)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(3 if args.quick else 7, 20 if args.quick else 60)
    if args.json:
        print(json.dumps(result, indent=2))
        return

    def fmt(s: object) -> str:
        d = s  # type: ignore[assignment]
        return f"{d['median']:.2f} ({d['min']:.2f}–{d['max']:.2f})"  # type: ignore[index]

    print(f"rule-set function on {result['requests']} CAC-2023 case requests (median per call, µs; spread over repeats)")
    print(f"  exact:       {fmt(result['exact_median_us'])}")
    print(f"  optimistic:  {fmt(result['optimistic_median_us'])}   ({result['fell_back']} requests fall back to exact)")
    print(f"  exact / optimistic: {fmt(result['speedup'])}x")
    print("Policy.decide on the same requests (validation and the Decision included)")
    print(f"  with the exact function:      {fmt(result['decide_exact_median_us'])}")
    print(f"  with the optimistic function: {fmt(result['decide_optimistic_median_us'])}")
    print(f"  exact / optimistic: {fmt(result['decide_speedup'])}x")


if __name__ == "__main__":
    main()
