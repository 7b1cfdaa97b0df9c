"""The evidence store on PostgreSQL beside SQLite, same run, same machine, same records.

    .venv/bin/python benchmarks/store_backends.py                 # starts a throw-away PostgreSQL 15
    .venv/bin/python benchmarks/store_backends.py --url postgresql://user:pw@host/db   # an existing, empty database
    .venv/bin/python benchmarks/store_backends.py --appends 200 --templates 100000 --queries 300
    .venv/bin/python benchmarks/store_backends.py --steps appends --repeat 3   # appends only, 3 alternating runs

Four measurements per backend (needs ``pip install 'facegate[postgres]'`` and, without ``--url``,
the PostgreSQL server binaries, as the tests do):

1. **durable appends/s**, 2 processes x 32 threads, each thread appending ``--appends`` gate
   records (decision and outcome alternately, masked, ~1.3/0.3 KB) to one store.  Every append
   returns only once its record is durable (SQLite: WAL fsynced; PostgreSQL: WAL flushed at
   COMMIT, ``synchronous_commit=on``, ``fsync=on``).  Afterwards the chain is verified.
2. **decision-to-record latency**: ``append`` call to receipt, p50/p99 -- under that load, and
   for one caller appending alone.
3. **identify over --templates templates** per node: 128-D, the median of ``--queries`` 1:N
   queries each of which matches (so PostgreSQL's check of the match against the database is
   in the figure), the time to load the matrix, and the first identify after another node
   enrolled one template (PostgreSQL: that change applied in place; SQLite: a reload).
4. **erase on one node, honoured on another**: two store objects on one file/database (two
   nodes; here in one process), node B's matrix loaded; node A erases a subject; B identifies
   in a loop.  Reported: how long after A's erase returned (committed) B's identify stopped
   returning the subject, how many of B's identifies *started after the commit* still returned it
   (must be 0), and, on PostgreSQL, when B heard the NOTIFY (its matrix back in step).

The machine's other load shows in every figure; compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # pgserver.py: the tests' throw-away server

from audit_append import record  # noqa: E402 - after the path set-up

from facegate.store import open_store  # noqa: E402

PROCESSES, THREADS = 2, 32
CTX = multiprocessing.get_context("spawn")


def _appender(target: str, per_thread: int, tag: int, barrier: Any, out: Any) -> None:
    store = open_store(target)
    latencies: list[float] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        mine = []
        for i in range(per_thread):
            rec = record(tag * 1000 + t, i, "mixed")
            start = time.perf_counter()
            store.audit.append(rec)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    barrier.wait()
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ended = time.monotonic()
    commits = store.audit.commits
    store.close()
    out.put((began, ended, latencies, commits))


def appends(target: str, per_thread: int) -> dict[str, Any]:
    open_store(target).close()
    barrier, out = CTX.Barrier(PROCESSES), CTX.Queue()
    procs = [CTX.Process(target=_appender, args=(target, per_thread, n, barrier, out)) for n in range(PROCESSES)]
    for p in procs:
        p.start()
    got = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    began, ended = min(g[0] for g in got), max(g[1] for g in got)
    latencies = sorted(x for g in got for x in g[2])
    total = PROCESSES * THREADS * per_thread
    with open_store(target, readonly=True, **({"listen": False} if "://" in target else {})) as store:
        report = store.audit.verify()
    assert report.ok and report.checked == total, report.problems[:3]
    with open_store(target) as store:  # one caller alone: the latency a quiet gate sees
        alone = []
        for i in range(200):
            start = time.perf_counter()
            store.audit.append(record(9999, i, "mixed"))
            alone.append(time.perf_counter() - start)
    alone.sort()
    return {
        "appends": total, "seconds": ended - began, "per_second": total / (ended - began),
        "commits": sum(g[3] for g in got),
        "p50_ms": 1e3 * latencies[len(latencies) // 2], "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)],
        "alone_p50_ms": 1e3 * alone[len(alone) // 2], "alone_p99_ms": 1e3 * alone[int(len(alone) * 0.99)],
    }


def _unit(rng: np.random.Generator, n: int, dim: int = 128) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


STAMPS = {"purpose": "access_control", "consent_id": None, "retention_days": 30, "location": "server", "model_id": "m1"}


def identify(target: str, templates: int, queries: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    vectors = _unit(rng, templates)
    with open_store(target, log_store_events=False) as store:
        for start in range(0, templates, 5000):
            store.gallery.enroll_many([{"subject_id": f"p{i}", "vector": vectors[i], **STAMPS}
                                       for i in range(start, min(start + 5000, templates))])
    with open_store(target) as node:  # a fresh node: its first identify loads the matrix
        probe = vectors[0] + 0.05 * _unit(rng, 1)[0]
        began = time.perf_counter()
        node.gallery.identify(probe, threshold=0.8)
        load = time.perf_counter() - began
        picks = rng.integers(0, templates, queries)
        times = []
        for i in picks.tolist():
            probe = vectors[i] + 0.05 * _unit(rng, 1)[0]
            began = time.perf_counter()
            found = node.gallery.identify(probe, k=5, threshold=0.8)
            times.append(time.perf_counter() - began)
            assert found and found[0].subject_id == f"p{i}"
        # Another node enrols one template: this node's next identify must find it (PostgreSQL
        # applies the change record in place; SQLite's other process reloads the matrix).
        late = _unit(rng, 1)[0]
        with open_store(target, log_store_events=False) as other:
            other.gallery.enroll_many([{"subject_id": "late", "vector": late, **STAMPS}])
            listener = getattr(node, "listener", None)
            if listener is not None:
                with other.reading() as conn:
                    generation = int(conn.execute("SELECT value FROM meta WHERE key = 'gallery_generation'").fetchone()[0])
                listener.wait_for(generation, 10)
        began = time.perf_counter()
        found = node.gallery.identify(late, threshold=0.8)
        after_change = time.perf_counter() - began
        assert found and found[0].subject_id == "late"
    return {"templates": templates, "load_s": load, "median_ms": 1e3 * statistics.median(times),
            "p99_ms": 1e3 * sorted(times)[int(len(times) * 0.99)], "after_change_ms": 1e3 * after_change}


def erase_honoured(target: str, rounds: int = 20) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    vectors = _unit(rng, 1000)
    delays, stale, heard = [], 0, []
    with open_store(target, log_store_events=False) as a, open_store(target) as b:
        a.gallery.enroll_many([{"subject_id": f"q{i}", "vector": vectors[i], **STAMPS} for i in range(1000)])
        for n in range(rounds):
            subject = f"q{n}"
            while not b.gallery.identify(vectors[n], threshold=0.9):  # b holds it (its matrix, in step)
                pass
            a.gallery.erase_subject(subject)
            committed = time.perf_counter()
            while True:
                started = time.perf_counter()
                got = [m.subject_id for m in b.gallery.identify(vectors[n], threshold=0.9)]
                if subject not in got:
                    delays.append(started - committed)
                    break
                stale += 1  # started after the commit and still returned the subject: must never happen
            listener = getattr(b, "listener", None)
            if listener is not None:
                with a.reading() as conn:
                    generation = int(conn.execute("SELECT value FROM meta WHERE key = 'gallery_generation'").fetchone()[0])
                listener.wait_for(generation, 10)
                heard.append(time.perf_counter() - committed)
    result = {"rounds": rounds, "honoured_after_ms_max": 1e3 * max(delays), "stale_identifies": stale}
    if heard:
        result["notify_heard_ms_median"] = 1e3 * statistics.median(heard)
    return result


STEPS = ("appends", "identify", "erase")
WORST = {"honoured_after_ms_max", "stale_identifies"}


def _medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per step, the median of each figure over the repeated runs (the worst, for worst cases and
    stale identifies: one stale identify in any run must show)."""
    def pick(key: str) -> Any:
        return max if key in WORST else statistics.median

    return {step: {key: pick(key)(r[key] for r in results) for key in results[0]}
            for step, results in runs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing, empty PostgreSQL database (default: start a throw-away server)")
    parser.add_argument("--appends", type=int, default=100, help="appends per thread (default 100)")
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                        help="which measurements (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the steps this many times, SQLite and PostgreSQL alternating; report medians")
    args = parser.parse_args(argv)
    server = None
    if args.url is None:
        from pgserver import PostgresServer

        server = PostgresServer()
    try:
        with tempfile.TemporaryDirectory(prefix="facegate-bench-") as tmp:
            def targets(name: str) -> dict[str, str]:
                pg = args.url if args.url else server.create_database(name)
                return {"sqlite": str(Path(tmp) / f"{name}.db"), "postgresql": pg}

            runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
            steps = {"appends": lambda t: appends(t, args.appends),
                     "identify": lambda t: identify(t, args.templates, args.queries),
                     "erase": erase_honoured}
            for block in range(args.repeat):
                for step in args.steps:
                    if args.url and (step != "appends" or block):
                        print(f"(--url: {step} needs a fresh database; skipped)")
                        continue
                    for backend, target in targets(f"{step}{block}").items():
                        result = steps[step](target)
                        runs.setdefault(backend, {}).setdefault(step, []).append(result)
                        print(f"{backend:10s} {step:8s} {result}", flush=True)
    finally:
        if server is not None:
            server.destroy()
    print()
    print(f"machine: {os.cpu_count()} cpus, python {sys.version.split()[0]}")
    sq, pg = (_medians(runs.get(backend, {})) for backend in ("sqlite", "postgresql"))
    if args.repeat > 1:
        print(f"(medians of {args.repeat} runs each, the backends alternating)")
    print("| measurement | SQLite | PostgreSQL 15 | PostgreSQL / SQLite |")
    print("|---|---|---|---|")

    def line(name: str, step: str, key: str, fmt: str = "{:,.1f}") -> None:
        if step in sq and step in pg:
            a, b = sq[step][key], pg[step][key]
            print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {b / a:.2f}x |" if a else f"| {name} | {a} | {b} | - |")

    line(f"durable appends/s, {PROCESSES} processes x {THREADS} threads", "appends", "per_second", "{:,.0f}")
    line("append -> durable receipt, p50 ms (under that load)", "appends", "p50_ms", "{:.2f}")
    line("append -> durable receipt, p99 ms (under that load)", "appends", "p99_ms", "{:.2f}")
    line("append -> durable receipt, p50 ms (one caller alone)", "appends", "alone_p50_ms", "{:.2f}")
    line("append -> durable receipt, p99 ms (one caller alone)", "appends", "alone_p99_ms", "{:.2f}")
    line(f"identify over {args.templates:,} templates, median ms", "identify", "median_ms", "{:.2f}")
    line("identify, p99 ms", "identify", "p99_ms", "{:.2f}")
    line("identify, first query (matrix load) s", "identify", "load_s", "{:.2f}")
    line("identify right after another node enrolled one template, ms", "identify", "after_change_ms", "{:.2f}")
    line("erase on node A -> node B's identify stops returning it, worst ms", "erase", "honoured_after_ms_max", "{:.2f}")
    if "erase" in pg:
        print(f"| identifies on B started after the erase committed that still returned it | "
              f"{sq['erase']['stale_identifies']} | {pg['erase']['stale_identifies']} | must be 0 |")
        print(f"| PostgreSQL: NOTIFY heard on B (matrix back in step), median ms | - | "
              f"{pg['erase'].get('notify_heard_ms_median', float('nan')):.2f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
