"""Before and after: this checkout's engine against an earlier revision's, interleaved, on this machine.

    .venv/bin/python benchmarks/compare_revisions.py 4d1349c            # three rounds (about a minute)
    .venv/bin/python benchmarks/compare_revisions.py 4d1349c --rounds 5

The revision's ``engine/`` is exported with ``git archive`` into a temporary folder and put first on
``PYTHONPATH``; each round measures it and then this checkout, each in a fresh process: the median
decision over the CAC-2023 case requests, the fullest permit request, what ``to_dict()`` and
``to_json()`` add to a fresh decision, and the wall and CPU time of ``facegate decide`` (CPU time is
the steadier of the two on a shared machine).  Rounds alternate so a
busy moment hits both; compare within a round.  Both engines' bytecode is compiled first, as an
installed package has it.  Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r'''
import gc, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from _common import PACK, case_requests
import facegate
p = facegate.load_policy(PACK)
p._procedure.prepare()
reqs = [r for _, r in case_requests()]
full = max([r for r in reqs if p.decide(r).permitted], key=lambda r: len(str(r)))
deny = next(r for r in reqs if not p.decide(r).permitted)
def each(fn, n=20):
    s = []
    for _ in range(n):
        for r in reqs:
            t0 = time.perf_counter_ns(); fn(r); s.append(time.perf_counter_ns() - t0)
    return statistics.median(s) / 1000
def one(fn, n=3000):
    gc.collect()
    s = []
    for _ in range(n):
        t0 = time.perf_counter_ns(); fn(); s.append(time.perf_counter_ns() - t0)
    return statistics.median(s) / 1000
out = {"cases": each(p.decide), "full permit": one(lambda: p.decide(full))}
out["to_dict (permit)"] = one(lambda: p.decide(full).to_dict()) - out["full permit"]
out["to_json (permit)"] = one(lambda: p.decide(full).to_json()) - out["full permit"]
d = one(lambda: p.decide(deny))
out["to_dict (deny)"] = one(lambda: p.decide(deny).to_dict()) - d
print(" ".join(f"{k}={v:.2f}" for k, v in out.items()))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    request = ROOT / "benchmarks" / ".compare-request.json"
    with tempfile.TemporaryDirectory(prefix="facegate-before-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.revision, "engine"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for tree in (Path(tmp) / "engine" / "facegate", ROOT / "engine" / "facegate"):  # bytecode compiled, as installed
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True, capture_output=True)
        envs = {args.revision: dict(os.environ, PYTHONPATH=str(Path(tmp) / "engine")), "this checkout": dict(os.environ)}
        subprocess.run([sys.executable, "-c", "import sys, json; sys.path.insert(0, sys.argv[1]); from _common import case_requests; "
                        "json.dump(case_requests()[0][1], open(sys.argv[2], 'w'))", str(ROOT / "benchmarks"), str(request)], check=True)
        walls: dict[str, list[float]] = {k: [] for k in envs}
        cpus: dict[str, list[float]] = {k: [] for k in envs}
        try:
            for n in range(args.rounds):
                for label, env in envs.items():
                    figures = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "benchmarks")], env=env, check=True,
                                             capture_output=True, text=True).stdout.strip()
                    t0, c0 = time.perf_counter(), _children_cpu()
                    subprocess.run([sys.executable, "-m", "facegate.cli", "decide", "--policy", str(ROOT / "policies" / "cn-cac-2023-draft"),
                                    "--request", str(request)], env=env, check=True, capture_output=True)
                    walls[label].append(time.perf_counter() - t0)
                    cpus[label].append(_children_cpu() - c0)
                    print(f"round {n + 1}, {label:>14}: {figures} µs; facegate decide {walls[label][-1]:.3f} s wall, "
                          f"{cpus[label][-1]:.3f} s cpu", flush=True)
        finally:
            request.unlink(missing_ok=True)
    for label, w in walls.items():
        print(f"facegate decide, {label}: wall median {statistics.median(w):.3f} s (min {min(w):.3f}), "
              f"cpu median {statistics.median(cpus[label]):.3f} s")
    print(f"load average now: {os.getloadavg()}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
