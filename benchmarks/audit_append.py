"""Sustained durable appends to the decision log: group commit against one commit per append.

    python benchmarks/audit_append.py                      # 1, 16, 64, 256 threads
    python benchmarks/audit_append.py --threads 64 256 --appends 100000
    python benchmarks/audit_append.py --dir /var/lib/facegate   # measure the disk you will use

Each thread does what the gate does per request: it appends a decision record (about 1.3 KB
after masking: a full request, two determining provisions, obligations; its own decision id and
subject id) and then that decision's outcome record (about 0.3 KB).  ``--kind decision`` appends
decision records only.  Every record is masked, encoded, hash-chained and committed with ``journal_mode=WAL`` and ``synchronous=FULL``: SQLite fsyncs the
WAL before each COMMIT returns, and ``append`` returns its receipt only after that.  Durability
is therefore on in both modes; what differs is how many appends share one fsync.

* ``group``: ``SQLiteStore.audit.append`` -- a writer thread commits whatever is waiting as one
  transaction (one fsync) while the callers of the next batch prepare their records.
* ``naive``: the same masking, encoding and hashing, then ``BEGIN IMMEDIATE``, head lookup,
  INSERT, COMMIT under one lock per append: one fsync per append, the obvious implementation.
* ``many``: ``append_many`` with 50 records per call (``--batch``), from the same threads: the
  store's own ceiling when the per-call thread hand-offs of CPython are taken out.

Each row is one run on a fresh file; the ratio is group over naive at the same thread count,
measured in the same run.  After each run the chain is verified and must hold every append.
The machine's other load shows in the numbers (the rate is bounded by one core: Python's GIL);
compare rows, not runs.  The fsync probe says what one fsync costs on this disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facegate.store import SQLiteStore
from facegate.store._audit import chain_hash
from facegate.store._canonical import GENESIS

BASE_REQUEST = {
    "operation": "identify", "purpose": "access_control", "jurisdiction": "CN",
    "actor": {"id": "acme-hotel-42", "role": "handler", "sector": "hotel", "stored_persons": 1200, "filing": "filed",
              "pia": {"completed": True, "covers_purpose": True}},
    "place": {"type": "business_premises", "signage": True},
    "capture": {"mode": "cooperative", "source": "camera", "realtime": True, "purpose_prompt_shown": True,
                "initiated_by": "subject"},
    "consent": {"type": "separate", "given_by": "subject", "purposes": ["access_control"], "withdrawn": False},
    "alternative": {"offered": True},
    "storage": {"raw_image": "discard", "location": "on_device", "transmit_over_internet": False, "retention_days": 30},
}  # fmt: skip


def record(thread: int, i: int, kind: str = "decision") -> dict[str, Any]:
    """A decision record as the gate writes it, or (odd ``i`` with ``kind="mixed"``) its outcome."""
    if kind == "mixed" and i % 2:
        return {"kind": "outcome", "decision_id": f"0190a1b2-{thread:04d}-{i - 1:012d}",
                "time": "2025-06-01T08:00:00.234567+00:00", "recognizer": {"id": "facegate-onnx", "version": "0.1.0"},
                "operation": "identify", "outcome": "executed", "error": None, "notes": [],
                "enforced": ["discard_raw_image", "retention_max_days"]}
    return {
        "kind": "decision",
        "decision_id": f"0190a1b2-{thread:04d}-{i:012d}",
        "time": "2025-06-01T08:00:00.123456+00:00",
        "policy": {"id": "cn-cac-2023-draft", "version": "1.0.0", "revision": "sha256:" + "ab" * 32},
        "request": {**BASE_REQUEST, "subject": {"id": f"guest-{thread}-{i}", "age": 34, "declined_face": False}},
        "effect": "permit",
        "reason": "permitted",
        "determining": [{"rule": "cn23-05-separate-consent", "provision": "CN23-05", "article": "5"},
                        {"rule": "cn23-10-alternative", "provision": "CN23-10", "article": "10"}],
        "obligations": [{"type": "discard_raw_image"}, {"type": "retention_max_days", "days": 30}],
        "errors": [],
        "violations": [],
    }


class NaiveLog:
    """The baseline: identical record work, one transaction (one fsync) per append."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._conn = store.connect()
        self._lock = threading.Lock()
        self.commits = 0

    def append(self, rec: dict[str, Any]) -> None:
        body, when, kind, effect, decision_id, provisions = self._store.audit._prepare(rec)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            head = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
            conn.execute("INSERT INTO audit_log (seq, prev, hash, time, kind, effect, decision_id, provisions, body) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, prev, chain_hash(seq, prev, body), when, kind, effect, decision_id, provisions, body))
            conn.execute("COMMIT")
            self.commits += 1

    def close(self) -> None:
        self._conn.close()


def run(directory: Path, mode: str, threads: int, appends: int, kind: str, batch: int = 50) -> dict[str, Any]:
    path = directory / f"{mode}-{threads}.db"
    store = SQLiteStore(path, log_store_events=False)
    naive = NaiveLog(store) if mode == "naive" else None
    append: Callable[[dict[str, Any]], Any] = naive.append if naive else store.audit.append
    per_thread = appends // threads
    if mode == "many":
        per_thread -= per_thread % batch
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        mine = latencies[t]
        start.wait()
        if mode == "many":
            for i in range(0, per_thread, batch):
                recs = [record(t, j, kind) for j in range(i, i + batch)]
                t0 = time.perf_counter()
                store.audit.append_many(recs)
                mine.extend([time.perf_counter() - t0] * batch)
            return
        for i in range(per_thread):
            rec = record(t, i, kind)
            t0 = time.perf_counter()
            append(rec)
            mine.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began, cpu0 = time.perf_counter(), time.process_time()
    for w in workers:
        w.join()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu0
    commits = naive.commits if naive else store.audit.commits
    if naive:
        naive.close()
    report = store.audit.verify()
    store.close()
    done = per_thread * threads
    assert report.ok and report.checked == done, report.problems
    flat = sorted(x for xs in latencies for x in xs)
    return {
        "mode": mode, "threads": threads, "appends": done, "seconds": round(seconds, 3),
        "rate": round(done / seconds), "per_commit": round(done / commits, 1),
        "p50_ms": round(statistics.median(flat) * 1e3, 3), "p99_ms": round(flat[int(len(flat) * 0.99) - 1] * 1e3, 3),
        "cpu_us_per_append": round(cpu / done * 1e6, 1),
    }


def body_sizes() -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp, SQLiteStore(Path(tmp) / "s.db", log_store_events=False) as store:
        return tuple(len(store.audit._prepare(record(0, i, "mixed"))[0].encode()) for i in (0, 1))  # type: ignore[return-value]


def fsync_probe(directory: Path, rounds: int = 200) -> float:
    """Median seconds for write(4 KiB) + fsync on this directory's disk."""
    path = directory / "fsync.probe"
    times = []
    with open(path, "wb") as fp:
        for _ in range(rounds):
            fp.write(os.urandom(4096))
            fp.flush()
            t0 = time.perf_counter()
            os.fsync(fp.fileno())
            times.append(time.perf_counter() - t0)
    path.unlink()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--appends", type=int, default=60_000, help="appends per group-commit run (default 60000)")
    parser.add_argument("--naive-appends", type=int, default=4_000, help="appends per naive run (default 4000)")
    parser.add_argument("--batch", type=int, default=50, help="records per append_many call in the `many` rows")
    parser.add_argument("--dir", type=Path, default=None, help="directory for the database files (default: a temp dir)")
    parser.add_argument("--kind", choices=("mixed", "decision"), default="mixed",
                        help="mixed: decision then outcome, as the gate appends (default); decision: decisions only")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        fsync = fsync_probe(directory)
        rows = []
        for threads in args.threads:
            naive = run(directory, "naive", threads, max(threads, args.naive_appends), args.kind)
            group_appends = args.appends if threads > 1 else min(args.appends, args.naive_appends)
            group = run(directory, "group", threads, max(threads, group_appends), args.kind)
            group["vs_naive"] = round(group["rate"] / naive["rate"], 1)
            many = run(directory, "many", threads, max(threads * args.batch, group_appends), args.kind, args.batch)
            many["vs_naive"] = round(many["rate"] / naive["rate"], 1)
            rows += [naive, group, many]
    if args.json:
        print(json.dumps({"fsync_ms": round(fsync * 1e3, 3), "sqlite": sqlite3.sqlite_version, "kind": args.kind,
                          "python": platform.python_version(), "rows": rows}, indent=1))
        return
    decision_bytes, outcome_bytes = body_sizes()
    records = (f"decision ({decision_bytes} B) + outcome ({outcome_bytes} B) records" if args.kind == "mixed"
               else f"decision records ({decision_bytes} B)")
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, {os.cpu_count()} cpus, "
          f"journal_mode=WAL synchronous=FULL; fsync of 4 KiB here: {fsync * 1e3:.3f} ms median; {records}")
    print(f"{'threads':>7} {'mode':<6} {'appends':>8} {'seconds':>8} {'appends/s':>10} {'per fsync':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'cpu us':>7} {'vs naive':>8}")
    for r in rows:
        ratio = f"{r['vs_naive']:.1f}x" if "vs_naive" in r else ""
        print(f"{r['threads']:>7} {r['mode']:<6} {r['appends']:>8} {r['seconds']:>8.2f} {r['rate']:>10,} "
              f"{r['per_commit']:>9.1f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['cpu_us_per_append']:>7.1f} {ratio:>8}")


if __name__ == "__main__":
    main()
