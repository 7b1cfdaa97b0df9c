"""Many processes, one SQLite file: creating it together and appending together never fails.

Real processes (``spawn``), released together by a barrier, so each really races the others.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from facegate.store import SQLiteStore

CTX = multiprocessing.get_context("spawn")


def _open_and_append(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        with SQLiteStore(path) as store:
            store.audit.append({"kind": "decision", "effect": "deny", "time": "2025-06-01T08:00:00Z"})
            results.put(("ok", store.audit.pseudonym("alice")))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _append_from_threads(path: str, threads: int, each: int, barrier, results) -> None:
    with SQLiteStore(path) as store:
        barrier.wait()
        errors: list[str] = []
        seqs: list[int] = []

        def work(t: int) -> None:
            for i in range(each):
                try:
                    seqs.append(store.audit.append({"kind": "decision", "effect": "deny", "n": t * each + i,
                                                    "time": "2025-06-01T08:00:00Z"}).seq)
                except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
                    errors.append(f"{type(exc).__name__}: {exc}")

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    results.put((errors, seqs))


def _run(target, args_for, n: int, timeout: float = 120.0) -> list:
    barrier, results = CTX.Barrier(n), CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args_for(i), barrier, results)) for i in range(n)]
    for p in procs:
        p.start()
    out = [results.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0
    return out


@pytest.mark.parametrize("round_", range(3))
def test_six_processes_creating_one_store_at_once_all_succeed_with_one_key(tmp_path: Path, round_: int):
    path = str(tmp_path / f"new-{round_}.db")
    out = _run(_open_and_append, lambda i: (path,), 6)
    assert [kind for kind, _ in out] == ["ok"] * 6, out
    assert len({pseudonym for _, pseudonym in out}) == 1  # one mask key, made once
    with SQLiteStore(path, readonly=True) as store:
        report = store.audit.verify()
    assert report.ok and report.checked == 6, report.problems


def test_four_processes_of_four_threads_append_into_one_intact_chain(tmp_path: Path):
    path = str(tmp_path / "shared.db")
    SQLiteStore(path).close()
    each = 250
    out = _run(_append_from_threads, lambda i: (path, 4, each), 4)
    errors = [e for errs, _ in out for e in errs]
    assert errors == []
    seqs = sorted(s for _, got in out for s in got)
    assert seqs == list(range(1, 4 * 4 * each + 1))  # every receipt distinct, no gaps
    with SQLiteStore(path, readonly=True) as store:
        report = store.audit.verify()
    assert report.ok and report.checked == 4 * 4 * each, report.problems


def test_a_writer_that_always_takes_the_next_number_first_cannot_make_an_append_fail(tmp_path: Path):
    """Deterministic worst case: each time this store's writer inserts, another connection has just
    appended the very sequence number it computed (whenever the file's write lock lets it)."""
    import sqlite3

    from facegate.store._audit import chain_hash

    path = tmp_path / "race.db"
    stolen: list[int] = []
    with SQLiteStore(path) as store:
        store.audit.append({"kind": "decision", "time": "2025-06-01T08:00:00Z"})
        thief = sqlite3.connect(path, isolation_level=None, timeout=0)

        def steal(sql: str) -> None:
            if not sql.startswith("INSERT INTO audit_log"):
                return
            try:
                seq, prev = thief.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
                body = '{"kind":"thief","time":"2025-06-01T08:00:00.000000Z"}'
                thief.execute("INSERT INTO audit_log (seq, prev, hash, time, kind, body) VALUES (?, ?, ?, ?, ?, ?)",
                              (seq + 1, prev, chain_hash(seq + 1, prev, body), "2025-06-01T08:00:00.000000Z", "thief", body))
                stolen.append(seq + 1)
            except sqlite3.OperationalError:  # the writer holds the write lock: nothing to steal
                pass

        store.audit._conn.set_trace_callback(steal)
        receipts = [store.audit.append({"kind": "decision", "n": i, "time": "2025-06-01T08:00:00Z"}) for i in range(10)]
        store.audit._conn.set_trace_callback(None)
        thief.close()
        report = store.audit.verify()
    assert len(stolen) >= 10  # the thief really did take a number before every one of them
    assert report.ok and report.checked == 11 + len(stolen), report.problems
    assert not {r.seq for r in receipts} & set(stolen)
