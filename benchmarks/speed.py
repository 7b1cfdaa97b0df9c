"""Speed: a full permit request, serialising decisions, start-up, memory, and decisions on two cores.

Called by ``run.py`` (section "9. Speed" of ``docs/performance.md``); on its own:

    .venv/bin/python benchmarks/speed.py            # prints the figures (about a minute)
    .venv/bin/python benchmarks/speed.py --quick
    .venv/bin/python benchmarks/speed.py --processes 40000 --repeats 5   # only the decisions/s rows

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


def _timed_alone_us(policy: facegate.Policy, request: Mapping[str, Any], call: Callable[[Any], Any], repeats: int,
                    number: int) -> dict[str, float]:
    """``call(decision)`` timed by itself, on ``number`` decisions of ``request`` decided beforehand
    (each call the first on its decision: nothing it computes on first read is there yet)."""
    return spread([_alone_us(policy, request, call, number) for _ in range(repeats)])


def _alone_us(policy: facegate.Policy, request: Mapping[str, Any], call: Callable[[Any], Any], number: int,
              collect: bool = True) -> float:
    """One pass of :func:`_timed_alone_us`: the median µs of ``call`` on ``number`` fresh decisions."""
    decisions = [policy.decide(request) for _ in range(number)]
    if collect:
        gc.collect()
    samples = []
    for decision in decisions:
        t0 = time.perf_counter_ns()
        call(decision)
        samples.append(time.perf_counter_ns() - t0)
    return float(statistics.median(samples)) / 1000


def serialisation(policy: facegate.Policy, request: Mapping[str, Any], repeats: int, number: int) -> dict[str, Any]:
    """to_dict, to_json (orjson) and the standard library's json.dumps(to_dict()), each two ways:
    the difference between deciding with and without it (a fresh decision each call), and timed
    alone on decisions made beforehand.  Three decisions: the fullest permit, the first deny of the
    cases (a forbid: no unmet permit to report) and the deny with the most unmet permits."""
    denies = [r for _, r in case_requests() if not policy.decide(r).permitted]
    unmet = max(denies, key=lambda r: (len(policy.decide(r).unmet), sum(len(u["failed"]) for u in policy.decide(r).unmet)))
    out: dict[str, Any] = {}
    for label, req in (("permit", request), ("deny", denies[0]), ("deny with unmet permits", unmet)):
        sample = policy.decide(req)
        rows = {
            "decide": _median_us(lambda req=req: policy.decide(req), repeats, number),
            "to_dict": _median_us(lambda req=req: policy.decide(req).to_dict(), repeats, number),
            "to_json": _median_us(lambda req=req: policy.decide(req).to_json(), repeats, number),
            "json.dumps": _median_us(lambda req=req: json.dumps(policy.decide(req).to_dict(), ensure_ascii=False).encode(), repeats, number),
        }
        # what serialising adds to deciding (a fresh decision each call: nothing cached)
        out[label] = {k: v for k, v in rows.items()} | {"bytes": len(sample.to_json()), "rules": len(sample.rules),
                                                         "determining": len(sample.determining), "unmet": len(sample.unmet)}
        for k in ("to_dict", "to_json", "json.dumps"):
            out[label][k + " alone"] = {q: max(0.0, out[label][k][q] - rows["decide"]["median"]) for q in ("min", "median", "max")}
        out[label]["to_dict timed"] = _timed_alone_us(policy, req, lambda d: d.to_dict(), repeats, number)
        out[label]["to_json timed"] = _timed_alone_us(policy, req, lambda d: d.to_json(), repeats, number)
    return out


def serialisation_over_cases(policy: facegate.Policy, repeats: int, rounds: int) -> dict[str, Any]:
    """``to_dict()`` and ``to_json()`` timed alone on the decisions of every case request: each
    request's median over ``rounds`` decisions made beforehand, then the median over the requests --
    all of them, and by kind (permits, denies from a forbid, denies that list unmet permits)."""
    requests = [r for _, r in case_requests()]
    kinds = []
    for r in requests:
        d = policy.decide(r)
        kinds.append("permit" if d.permitted else "deny with unmet permits" if d.unmet else "deny")
    out: dict[str, Any] = {}
    for name, call in (("to_dict", lambda d: d.to_dict()), ("to_json", lambda d: d.to_json())):
        overall: list[float] = []
        by_kind: dict[str, list[float]] = {k: [] for k in ("permit", "deny", "deny with unmet permits")}
        for _ in range(repeats):
            each = [_alone_us(policy, r, call, rounds, collect=False) for r in requests]
            overall.append(statistics.median(each))
            for kind in by_kind:
                by_kind[kind].append(statistics.median(t for t, k in zip(each, kinds) if k == kind))
        out[name] = {"all": spread(overall), **{k: spread(v) for k, v in by_kind.items()}}
    out["counts"] = {k: kinds.count(k) for k in ("permit", "deny", "deny with unmet permits")}
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


def _independent(policy: facegate.Policy, requests: list[Any], processes: int) -> None:
    """The ceiling: ``processes`` forked processes, each deciding its share and sending nothing back."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    size = -(-len(requests) // processes)
    procs = [context.Process(target=policy.decide_many, args=(requests[i * size:(i + 1) * size],), daemon=True) for i in range(processes)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()


def copy_on_write(policy: facegate.Policy, requests: list[Any], repeats: int) -> dict[str, Any]:
    """What a forked process costs the one it was forked from, while it lives: ``decide_many`` on
    ``requests`` alone, then with an idle forked child alive -- the first batch after the fork (every
    page this process writes is still shared, so each is copied on write) and a second one.  A
    batch forked for ``decide_many(processes=2)`` pays this in both processes (docs/performance.md)."""
    import resource

    def faults() -> int:  # page faults this process took without reading a disk (copy on write among them)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    alone, first, second, faults_alone, faults_first = [], [], [], [], []
    for _ in range(repeats):
        gc.collect()
        f0, t0 = faults(), time.perf_counter()
        policy.decide_many(requests)
        alone.append(time.perf_counter() - t0)
        faults_alone.append(faults() - f0)
        gc.collect()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # idle until the parent closes the pipe
            os.close(write)
            os.read(read, 1)
            os._exit(0)
        os.close(read)
        try:
            for out in (first, second):
                f0, t0 = faults(), time.perf_counter()
                policy.decide_many(requests)
                out.append(time.perf_counter() - t0)
                if out is first:
                    faults_first.append(faults() - f0)
        finally:
            os.close(write)
            os.waitpid(child, 0)
    extra = [(b - a) / max(1, fb - fa) * 1e6 for a, b, fa, fb in zip(alone, first, faults_alone, faults_first, strict=True)]
    return {"first_ratio": spread([b / a for a, b in zip(alone, first, strict=True)]),
            "second_ratio": spread([b / a for a, b in zip(alone, second, strict=True)]),
            "faults_alone": spread([float(f) for f in faults_alone]), "faults_first": spread([float(f) for f in faults_first]),
            "us_per_extra_fault": spread(extra)}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers this process forked and joined
    return usage.ru_utime + usage.ru_stime


def processes(policy: facegate.Policy, count: int, repeats: int) -> dict[str, Any]:
    """Decisions per second on one process and on two, for the documented paths, in blocks: each
    block times every row once (so a busy moment hits every row), and each ratio is taken within
    its block.  Two processes: ``Policy.decide_many(requests, processes=2)`` (one worker forked
    for the batch, after the requests are known) and a kept ``DecisionPool(policy, processes=1)``
    (the caller and one worker, requests sent over a pipe), as ``Decision`` objects and as JSON
    bytes.  The ceiling: two independent forked processes, each deciding half and returning nothing."""
    import orjson

    from facegate import _pool_codec
    from facegate._pool import DecisionPool

    base = [r for _, r in case_requests()]
    requests = (base * (count // len(base) + 1))[:count]
    documents = [orjson.dumps(r) for r in requests]  # the same requests as JSON documents (a JSON Lines file's lines)
    rows: dict[str, list[float]] = {k: [] for k in ("one", "forked", "pool", "one_json", "forked_json", "pool_json", "ceiling",
                                                    "one_documents", "pool_documents")}
    with DecisionPool(policy, processes=1) as pool:
        pool.decide_many(requests[:512], chunksize=64)  # the worker started and warm
        pool.decide_json(documents[:512], chunksize=64)
        calls: dict[str, Callable[[], Any]] = {
            "one": lambda: policy.decide_many(requests),
            "forked": lambda: policy.decide_many(requests, processes=2),
            "pool": lambda: pool.decide_many(requests, chunksize=64),
            "one_json": lambda: policy.decide_many(requests, as_json=True),
            "forked_json": lambda: policy.decide_many(requests, processes=2, as_json=True),
            "pool_json": lambda: pool.decide_many(requests, chunksize=64, as_json=True),
            "ceiling": lambda: _independent(policy, requests, 2),
            # documents in, JSON bytes out: one process reads, decides and encodes each (what the pool's caller does with its own chunks)
            "one_documents": lambda: _pool_codec.decide_documents(policy._procedure, documents),
            "pool_documents": lambda: pool.decide_json(documents),  # its default chunks (256 documents)
        }
        for name in ("one", "one_json", "one_documents"):  # the baselines' first batch grows the heap (page faults): not timed
            calls[name]()
        cpu: dict[str, list[float]] = {k: [] for k in ("one", "forked", "one_json", "forked_json")}
        for block in range(repeats):
            order = list(calls)
            order = order[block % len(order):] + order[:block % len(order)]  # no row always first or last
            for name in order:
                gc.collect()
                own, children = time.process_time(), _children_cpu()
                t0 = time.perf_counter()
                calls[name]()
                rows[name].append(count / (time.perf_counter() - t0))
                if name in cpu:  # the longer of the two processes' CPU times: the wall time with a core each
                    cpu[name].append(max(time.process_time() - own, _children_cpu() - children))
        for two, one in (("forked", "one"), ("forked_json", "one_json")):
            rows[f"{two}_cpu_ratio"] = [a / b for a, b in zip(cpu[one], cpu[two], strict=True)]

    def ratio(two: str, one: str) -> dict[str, float]:
        return spread([b / a for a, b in zip(rows[one], rows[two], strict=True)])

    cow = copy_on_write(policy, requests[:count // 2], repeats)
    return {"requests": count, **{k: spread(v) for k, v in rows.items() if not k.endswith("_ratio")}, "copy_on_write": cow,
            "forked_ratio": ratio("forked", "one"), "pool_ratio": ratio("pool", "one"),
            "forked_json_ratio": ratio("forked_json", "one_json"), "pool_json_ratio": ratio("pool_json", "one_json"),
            "pool_documents_ratio": ratio("pool_documents", "one_documents"),
            "ceiling_ratio": ratio("ceiling", "one"), "forked_cpu_ratio": spread(rows["forked_cpu_ratio"]),
            "forked_json_cpu_ratio": spread(rows["forked_json_cpu_ratio"]),
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
    result["case_count"] = len(case_requests())
    result["cases"] = time_decisions(policy.decide, [r for _, r in case_requests()],
                                     [policy.decide(r).effect for _, r in case_requests()], repeats, 0.02 if quick else 0.4)
    result["floor"] = floor(repeats, quick)
    print(f"  full permit request ({result['full_permit_facts']} facts): {fmt(result['full_permit']['median_us'])} µs; "
          f"the {result['case_count']} case requests {fmt(result['cases']['median_us'])} µs; hand-written floor {fmt(result['floor']['median_us'], 2)} µs")
    result["serialisation"] = serialisation(policy, request, repeats, number)
    for label, rows in result["serialisation"].items():
        print(f"  {label}: " + ", ".join(f"{k} {fmt(rows[k], 2)} µs" for k in ("decide", "to_dict alone", "to_dict timed", "to_json alone",
                                                                           "to_json timed", "json.dumps alone"))
              + f"; {rows['bytes']} bytes")
    result["serialisation_cases"] = over = serialisation_over_cases(policy, repeats, 5 if quick else 40)
    kinds = ", ".join(f"{k} {fmt(over['to_dict'][k], 2)}" for k in over["counts"])
    print(f"  to_dict on the {len(case_requests())} case decisions, median {fmt(over['to_dict']['all'], 2)} µs ({kinds}); "
          f"to_json {fmt(over['to_json']['all'], 2)} µs")
    result["memory"] = memory(PACK)
    print(f"  retained: loaded {result['memory']['loaded_kib']:,.0f} KiB, every operation compiled {result['memory']['prepared_kib']:,.0f} KiB")
    result["load"] = load_times(2 if quick else repeats)
    print(f"  cold import + load {fmt(result['load']['import_and_load_s'], 3)} s, compiling every operation {fmt(result['load']['compile_all_operations_s'], 3)} s")
    result["startup"] = startup(2 if quick else 5)
    for label, s in result["startup"].items():
        print(f"  {label}: {fmt(s, 3)} s")
    result["processes"] = processes(policy, 6000 if quick else 40000, repeats)
    p = result["processes"]
    print(f"  decisions/s: 1 process {fmt(p['one'], 0)}; 2 processes, decide_many(processes=2) {fmt(p['forked'], 0)} "
          f"({fmt(p['forked_ratio'], 2)}×), a kept DecisionPool {fmt(p['pool'], 0)} ({fmt(p['pool_ratio'], 2)}×); as JSON bytes: "
          f"1 process {fmt(p['one_json'], 0)}, decide_many(processes=2, as_json=True) {fmt(p['forked_json'], 0)} "
          f"({fmt(p['forked_json_ratio'], 2)}×), the pool {fmt(p['pool_json'], 0)} ({fmt(p['pool_json_ratio'], 2)}×); JSON documents in and out: "
          f"1 process {fmt(p['one_documents'], 0)}, the pool's decide_json {fmt(p['pool_documents'], 0)} ({fmt(p['pool_documents_ratio'], 2)}×); "
          f"ceiling, 2 independent processes {fmt(p['ceiling_ratio'], 2)}×; load average {p['load_average']}")
    return result


def render(s: Mapping[str, Any]) -> list[str]:
    def f(x: Mapping[str, float], d: int = 1) -> str:
        return f"{x['median']:,.{d}f} <sub>({x['min']:,.{d}f}–{x['max']:,.{d}f})</sub>"

    cases, full = s["cases"]["median_us"], s["full_permit"]["median_us"]
    out = ["## 9. Speed: one decision end to end, serialising it, start-up, memory, two cores\n",
           "`benchmarks/speed.py` (also `.venv/bin/python benchmarks/speed.py` on its own).  Every facegate figure "
           "includes validating the request and building the `Decision`.\n",
           "| what | median | unit |", "|---|---:|---|",
           f"| decide, the pack's {s.get('case_count', len(case_requests()))} case requests | {f(cases)} | µs |",
           f"| decide, the fullest permit case ({s['full_permit_facts']} facts) | {f(full)} | µs |"]
    if "floor" in s:
        out.append(f"| hand-written Python (floor: no validation, no `Decision`, no CEL semantics), the same requests | {f(s['floor']['median_us'], 2)} | µs |")
    if "serialisation_cases" in s:
        over = s["serialisation_cases"]
        counts = over["counts"]
        for name in ("to_dict", "to_json"):
            out.append(f"| `{name}()` timed alone on the {sum(counts.values())} case decisions (each request's median, then the median over them) "
                       f"| {f(over[name]['all'], 2)} | µs |")
            for kind, n in counts.items():
                out.append(f"| … the {n} {kind if kind != 'deny' else 'denies from a forbid'}{'s' if kind == 'permit' else ''} | {f(over[name][kind], 2)} | µs |")
    for label, rows in s["serialisation"].items():
        unmet = f", {rows['unmet']} unmet permits" if rows.get("unmet") else ""
        out.append(f"| {label}: `to_dict()` (beyond deciding; {rows['rules']} rule outcomes, {rows['determining']} determining{unmet}) | {f(rows['to_dict alone'], 2)} | µs |")
        if "to_dict timed" in rows:
            out.append(f"| {label}: `to_dict()` timed alone, on decisions made beforehand | {f(rows['to_dict timed'], 2)} | µs |")
        out.append(f"| {label}: `to_json()` (orjson, {rows['bytes']:,} bytes) | {f(rows['to_json alone'], 2)} | µs |")
        if "to_json timed" in rows:
            out.append(f"| {label}: `to_json()` timed alone, on decisions made beforehand | {f(rows['to_json timed'], 2)} | µs |")
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
    if "forked" in p:
        load = ", ".join(f"{x:.1f}" for x in p["load_average"])
        out += [f"| … two processes: `decide_many(requests, processes=2)` (one worker forked for the batch) | {f(p['forked'], 0)} | /s |",
                f"| two processes ÷ one ({p['cores']} usable cores; load average {load} at this row) | {f(p['forked_ratio'], 2)} | × |",
                f"| … two processes: a kept `DecisionPool(policy, processes=1)` (requests sent over a pipe) | {f(p['pool'], 0)} | /s |",
                f"| kept pool ÷ one process | {f(p['pool_ratio'], 2)} | × |",
                f"| decisions as JSON bytes/s, one process (`decide_many(requests, as_json=True)`) | {f(p['one_json'], 0)} | /s |",
                f"| … two processes (`decide_many(requests, processes=2, as_json=True)`) | {f(p['forked_json'], 0)} | /s |",
                f"| two processes ÷ one, as JSON bytes | {f(p['forked_json_ratio'], 2)} | × |",
                f"| … a kept pool, as JSON bytes ÷ one process | {f(p['pool_json_ratio'], 2)} | × |",
                f"| the ceiling: two independent forked processes, each deciding half and returning nothing, ÷ one | {f(p['ceiling_ratio'], 2)} | × |",
                *([f"| requests as JSON documents in, decisions as JSON bytes out, one process (read, decide, `to_json()`) | {f(p['one_documents'], 0)} | /s |",
                   f"| … a kept pool: `DecisionPool(policy, processes=1).decide_json(documents)` (the caller and one worker) | {f(p['pool_documents'], 0)} | /s |",
                   f"| kept pool ÷ one process, JSON documents in and out | {f(p['pool_documents_ratio'], 2)} | × |"]
                  if "pool_documents_ratio" in p else []),
                f"| CPU time, one process ÷ the busier of the two (`processes=2`): the ratio with a core each | {f(p['forked_cpu_ratio'], 2)} | × |",
                f"| … the same, as JSON bytes | {f(p['forked_json_cpu_ratio'], 2)} | × |"]
        if "copy_on_write" in p:
            cow = p["copy_on_write"]
            out += [f"| deciding half the batch with an idle forked process alive ÷ alone: the first batch after the fork (copy on write) | {f(cow['first_ratio'], 2)} | × |",
                    f"| … the second batch | {f(cow['second_ratio'], 2)} | × |"]
            if "faults_first" in cow:
                out += [f"| page faults in that first batch (alone: {f(cow['faults_alone'], 0)}) | {f(cow['faults_first'], 0)} | faults |",
                        f"| … the time each extra fault cost | {f(cow['us_per_extra_fault'], 1)} | µs |"]
        out += [""]
    elif "workers" in p:
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
    parser.add_argument("--processes", type=int, metavar="N", help="only the decisions/s rows, on N requests")
    args = parser.parse_args(argv)
    if args.processes:
        policy = facegate.load_policy(PACK)
        policy._procedure.prepare()
        p = processes(policy, args.processes, args.repeats)
        for key in ("forked_ratio", "pool_ratio", "forked_json_ratio", "pool_json_ratio", "pool_documents_ratio", "ceiling_ratio",
                    "forked_cpu_ratio", "forked_json_cpu_ratio"):
            print(f"  {key}: {fmt(p[key], 2)}")
        cow = p["copy_on_write"]
        print(f"  copy on write, deciding with a forked process alive ÷ alone: first batch {fmt(cow['first_ratio'], 2)}, "
              f"second {fmt(cow['second_ratio'], 2)}; page faults {fmt(cow['faults_first'], 0)} against {fmt(cow['faults_alone'], 0)} "
              f"alone, {fmt(cow['us_per_extra_fault'], 1)} µs each")
        print(f"  one process {fmt(p['one'], 0)}/s, as JSON {fmt(p['one_json'], 0)}/s; load average {p['load_average']}")
        return
    measure(args.repeats, args.quick)


if __name__ == "__main__":
    main()
