"""Speed: a full permit request, serialising decisions, start-up, memory, and decisions on two cores.

Called by ``run.py`` (section "9. Speed" of ``docs/performance.md``); on its own:

    .venv/bin/python benchmarks/speed.py            # prints the figures (about a minute)
    .venv/bin/python benchmarks/speed.py --quick

Every ratio is taken between figures of this one run.  Nothing here is a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PACK, case_requests, fmt, spread, time_decisions  # noqa: E402

import facegate  # noqa: E402


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value) or 1
    return 1


def full_permit(policy: facegate.Policy) -> dict[str, Any]:
    """The permitted case request that states the most facts."""
    permitted = [r for _, r in case_requests() if policy.decide(r).permitted]
    return max(permitted, key=_leaves)


def _median_us(call: Callable[[], Any], repeats: int, number: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        gc.collect()
        samples = []
        for _ in range(number):
            t0 = time.perf_counter_ns()
            call()
            samples.append(time.perf_counter_ns() - t0)
        runs.append(statistics.median(samples) / 1000)
    return spread(runs)


def serialisation(policy: facegate.Policy, request: Mapping[str, Any], repeats: int, number: int) -> dict[str, Any]:
    """to_dict, to_json (orjson) and the standard library's json.dumps(to_dict()), on a fresh decision each time."""
    deny = next(r for _, r in case_requests() if not policy.decide(r).permitted)
    out: dict[str, Any] = {}
    for label, req in (("permit", request), ("deny", deny)):
        sample = policy.decide(req)
        rows = {
            "decide": _median_us(lambda req=req: policy.decide(req), repeats, number),
            "to_dict": _median_us(lambda req=req: policy.decide(req).to_dict(), repeats, number),
            "to_json": _median_us(lambda req=req: policy.decide(req).to_json(), repeats, number),
            "json.dumps": _median_us(lambda req=req: json.dumps(policy.decide(req).to_dict(), ensure_ascii=False).encode(), repeats, number),
        }
        # what serialising adds to deciding (a fresh decision each call: nothing cached)
        out[label] = {k: v for k, v in rows.items()} | {"bytes": len(sample.to_json()), "rules": len(sample.rules),
                                                         "determining": len(sample.determining)}
        for k in ("to_dict", "to_json", "json.dumps"):
            out[label][k + " alone"] = {q: max(0.0, out[label][k][q] - rows["decide"]["median"]) for q in ("min", "median", "max")}
    return out


def startup(repeats: int) -> dict[str, Any]:
    """Wall time of `facegate decide` from a shell, next to a bare Python start, in subprocesses.

    An installed facegate has its bytecode compiled (pip does it at install); this checkout runs
    from source, and with ``PYTHONDONTWRITEBYTECODE`` set Python would compile every module again
    in every process.  So facegate's bytecode is compiled first, as pip would."""
    import compileall

    compileall.compile_dir(str(Path(facegate.__file__).parent), quiet=1)
    request = next(r for _, r in case_requests())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(request, f)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import facegate'": [sys.executable, "-c", "import facegate"],
        "facegate decide (CAC-2023, one request)": [sys.executable, "-m", "facegate.cli", "decide", "--policy", str(PACK), "--request", f.name],
        "facegate check (CAC-2023)": [sys.executable, "-m", "facegate.cli", "check", str(PACK)],
    }
    out: dict[str, Any] = {}
    for _ in range(repeats):  # interleaved: a busy moment hits every row
        for label, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            out.setdefault(label, []).append(time.perf_counter() - t0)
    os.unlink(f.name)
    return {k: spread(v) for k, v in out.items()}


def memory(policy_root: Path) -> dict[str, Any]:
    """Python heap retained by a loaded pack, and after compiling every operation's function."""
    facegate.load_policy(policy_root)  # warm imports and caches
    gc.collect()
    tracemalloc.start()
    policy = facegate.load_policy(policy_root)
    loaded = tracemalloc.get_traced_memory()[0] / 1024
    policy._procedure.prepare()
    prepared = tracemalloc.get_traced_memory()[0] / 1024
    tracemalloc.stop()
    return {"loaded_kib": loaded, "prepared_kib": prepared}


def load_times(repeats: int) -> dict[str, Any]:
    """Cold load of the CAC-2023 pack in a fresh process, then compiling every operation."""
    code = ("import time,sys; t=time.perf_counter(); import facegate; p=facegate.load_policy(sys.argv[1]); "
            "t1=time.perf_counter(); p._procedure.prepare(); t2=time.perf_counter(); print(t1-t, t2-t1)")
    loads, prepares = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code, str(PACK)], check=True, capture_output=True, text=True).stdout.split()
        loads.append(float(out[0]))
        prepares.append(float(out[1]))
    return {"import_and_load_s": spread(loads), "compile_all_operations_s": spread(prepares)}


def processes(policy: facegate.Policy, count: int, repeats: int) -> dict[str, Any]:
    """Decisions per second: one process (decide_many) against two processes deciding -- the caller
    and one forked worker (``DecisionPool(policy, processes=1)``, the caller deciding the chunks the
    worker has not started) -- and against two forked workers the caller only feeds."""
    from facegate._pool import DecisionPool

    base = [r for _, r in case_requests()]
    requests = (base * (count // len(base) + 1))[:count]
    one, two, workers, one_json, two_json = [], [], [], [], []
    with DecisionPool(policy, processes=1) as pool, DecisionPool(policy, processes=2, caller_helps=False) as fed:
        pool.decide_many(requests[:512], chunksize=256)  # workers started and warm
        fed.decide_many(requests[:512], chunksize=256)
        for _ in range(repeats):  # interleaved: a busy moment hits every row
            t0 = time.perf_counter()
            policy.decide_many(requests)
            one.append(count / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            pool.decide_many(requests, chunksize=256)
            two.append(count / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            fed.decide_many(requests, chunksize=256)
            workers.append(count / (time.perf_counter() - t0))
            t0 = time.perf_counter()  # decisions as JSON bytes (a batch answer, a file of decisions)
            [policy.decide(r).to_json() for r in requests]
            one_json.append(count / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            pool.decide_many(requests, chunksize=256, as_json=True)
            two_json.append(count / (time.perf_counter() - t0))
    return {"requests": count, "one": spread(one), "two": spread(two), "workers": spread(workers),
            "ratio": spread([b / a for a, b in zip(one, two, strict=True)]),
            "workers_ratio": spread([b / a for a, b in zip(one, workers, strict=True)]),
            "one_json": spread(one_json), "two_json": spread(two_json),
            "json_ratio": spread([b / a for a, b in zip(one_json, two_json, strict=True)]),
            "cores": len(os.sched_getaffinity(0)), "load_average": list(os.getloadavg())}


def floor(repeats: int, quick: bool) -> dict[str, Any]:
    """The hand-written Python version of the pack (benchmarks/peers/cac2023_hand.py) on the same requests."""
    import importlib

    hand = importlib.import_module("peers.cac2023_hand")
    requests = [r for _, r in case_requests()]
    effects = [hand.decide(r)[0] for r in requests]  # (effect, determining rule ids)
    return time_decisions(hand.decide, requests, effects, repeats, 0.02 if quick else 0.3)


def measure(repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    policy = facegate.load_policy(PACK)
    policy._procedure.prepare()
    request = full_permit(policy)
    number = 200 if quick else 3000
    result: dict[str, Any] = {"status": "ok", "full_permit_facts": _leaves(request)}
    result["full_permit"] = time_decisions(policy.decide, [request], ["permit"], repeats, 0.02 if quick else 0.3)
    result["cases"] = time_decisions(policy.decide, [r for _, r in case_requests()],
                                     [policy.decide(r).effect for _, r in case_requests()], repeats, 0.02 if quick else 0.4)
    result["floor"] = floor(repeats, quick)
    print(f"  full permit request ({result['full_permit_facts']} facts): {fmt(result['full_permit']['median_us'])} µs; "
          f"the 91 case requests {fmt(result['cases']['median_us'])} µs; hand-written floor {fmt(result['floor']['median_us'], 2)} µs")
    result["serialisation"] = serialisation(policy, request, repeats, number)
    for label, rows in result["serialisation"].items():
        print(f"  {label}: " + ", ".join(f"{k} {fmt(rows[k], 2)} µs" for k in ("decide", "to_dict alone", "to_json alone", "json.dumps alone"))
              + f"; {rows['bytes']} bytes")
    result["memory"] = memory(PACK)
    print(f"  retained: loaded {result['memory']['loaded_kib']:,.0f} KiB, every operation compiled {result['memory']['prepared_kib']:,.0f} KiB")
    result["load"] = load_times(2 if quick else repeats)
    print(f"  cold import + load {fmt(result['load']['import_and_load_s'], 3)} s, compiling every operation {fmt(result['load']['compile_all_operations_s'], 3)} s")
    result["startup"] = startup(2 if quick else 5)
    for label, s in result["startup"].items():
        print(f"  {label}: {fmt(s, 3)} s")
    result["processes"] = processes(policy, 2000 if quick else 40000, repeats)
    p = result["processes"]
    print(f"  decisions/s: 1 process {fmt(p['one'], 0)}, 2 processes (caller + 1 worker) {fmt(p['two'], 0)} ({fmt(p['ratio'], 2)}×), "
          f"2 workers fed by the caller {fmt(p['workers'], 0)} ({fmt(p['workers_ratio'], 2)}×); as JSON bytes: 1 process "
          f"{fmt(p['one_json'], 0)}, caller + 1 worker {fmt(p['two_json'], 0)} ({fmt(p['json_ratio'], 2)}×); load average {p['load_average']}")
    return result


def render(s: Mapping[str, Any]) -> list[str]:
    def f(x: Mapping[str, float], d: int = 1) -> str:
        return f"{x['median']:,.{d}f} <sub>({x['min']:,.{d}f}–{x['max']:,.{d}f})</sub>"

    cases, full = s["cases"]["median_us"], s["full_permit"]["median_us"]
    out = ["## 9. Speed: one decision end to end, serialising it, start-up, memory, two cores\n",
           "`benchmarks/speed.py` (also `.venv/bin/python benchmarks/speed.py` on its own).  Every facegate figure "
           "includes validating the request and building the `Decision`.\n",
           "| what | median | unit |", "|---|---:|---|",
           f"| decide, the pack's 91 case requests | {f(cases)} | µs |",
           f"| decide, the fullest permit case ({s['full_permit_facts']} facts) | {f(full)} | µs |"]
    if "floor" in s:
        out.append(f"| hand-written Python (floor: no validation, no `Decision`, no CEL semantics), the same 91 requests | {f(s['floor']['median_us'], 2)} | µs |")
    for label, rows in s["serialisation"].items():
        out.append(f"| {label}: `to_dict()` (beyond deciding; {rows['rules']} rule outcomes, {rows['determining']} determining) | {f(rows['to_dict alone'], 2)} | µs |")
        out.append(f"| {label}: `to_json()` (orjson, {rows['bytes']:,} bytes) | {f(rows['to_json alone'], 2)} | µs |")
        out.append(f"| {label}: `json.dumps(to_dict())` (standard library, for comparison) | {f(rows['json.dumps alone'], 2)} | µs |")
    m, ld = s["memory"], s["load"]
    out += [f"| retained memory of the loaded pack (tracemalloc) | {m['loaded_kib']:,.0f} | KiB |",
            f"| … with every operation's function compiled | {m['prepared_kib']:,.0f} | KiB |",
            f"| cold: import facegate and load the pack (fresh process) | {f(ld['import_and_load_s'], 3)} | s |",
            f"| compiling every operation's function (done lazily, per operation, on first use) | {f(ld['compile_all_operations_s'], 3)} | s |"]
    for label, t in s["startup"].items():
        out.append(f"| wall time: `{label}` (facegate's bytecode compiled, as installed) | {f(t, 3)} | s |")
    p = s["processes"]
    out += [f"| decisions/s, one process (`Policy.decide_many`, {p['requests']:,} requests) | {f(p['one'], 0)} | /s |"]
    if "workers" in p:
        out += [f"| decisions/s, two processes: the caller and one forked worker (`DecisionPool(policy, processes=1)`) | {f(p['two'], 0)} | /s |",
                f"| two processes ÷ one ({p['cores']} usable cores; load average {', '.join(f'{x:.1f}' for x in p['load_average'])} at this row) | {f(p['ratio'], 2)} | × |",
                f"| decisions/s, two forked workers the caller only feeds (`processes=2, caller_helps=False`) | {f(p['workers'], 0)} | /s |",
                f"| two workers ÷ one process | {f(p['workers_ratio'], 2)} | × |"]
        if "json_ratio" in p:
            out += [f"| decisions as JSON bytes/s, one process (`decide(r).to_json()`) | {f(p['one_json'], 0)} | /s |",
                    f"| … the caller and one worker (`decide_many(..., as_json=True)`, encoded where decided) | {f(p['two_json'], 0)} | /s |",
                    f"| two processes ÷ one, as JSON bytes | {f(p['json_ratio'], 2)} | × |"]
        out += [""]
    else:
        out += [f"| decisions/s, two worker processes (`DecisionPool(policy, processes=2)`) | {f(p['two'], 0)} | /s |",
                f"| two processes ÷ one ({p['cores']} usable cores, shared with other workers) | {f(p['ratio'], 2)} | × |", ""]
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    measure(args.repeats, args.quick)


if __name__ == "__main__":
    main()
