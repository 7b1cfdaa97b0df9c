"""A record that cannot be encoded fails only its own caller, even inside a shared batch."""

from __future__ import annotations

import threading

import pytest

from facegate.errors import AuditWriteError
from facegate.store import AuditReceipt, SQLiteStore


def test_bad_record_in_a_shared_batch_fails_only_its_caller(tmp_path):
    with SQLiteStore(tmp_path / "a.db") as store:
        results: dict[int, object] = {}
        start = threading.Barrier(33)

        def work(i: int) -> None:
            record = {"kind": "decision", "n": i, "note": "\ud800" if i == 7 else "fine"}  # a lone surrogate
            start.wait()
            try:
                results[i] = store.audit.append(record)
            except AuditWriteError as exc:
                results[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        start.wait()
        for t in threads:
            t.join()
        assert isinstance(results[7], AuditWriteError) and "cannot log record" in str(results[7])
        good = [r for i, r in results.items() if i != 7]
        assert all(not isinstance(r, Exception) for r in good)
        assert sorted(r.seq for r in good) == list(range(1, 32))
        report = store.audit.verify()
        assert report.ok and report.checked == 31


def test_non_mapping_records_are_refused_at_once(tmp_path):
    with SQLiteStore(tmp_path / "a.db") as store:
        with pytest.raises(AuditWriteError, match="must be a mapping"):
            store.audit.append(["not", "a", "record"])  # type: ignore[arg-type]


# ``append_later`` (``Gate.decide_async`` and the service's /v1/decide): on both backends (the ``store`` fixture).
def test_append_later_encodes_at_once_and_commits_in_order(store):
    results: list[tuple[object, object]] = []
    record = {"kind": "note", "n": 1, "nested": {"k": "v"}}
    store.audit.append_later(record, lambda r, e: results.append((r, e)))
    record["nested"]["k"] = "changed after the call"  # already encoded: the log keeps what was handed over
    with pytest.raises(AuditWriteError):
        store.audit.append_later({"kind": "note", "bad": object()}, lambda r, e: None)  # not JSON: refused at once
    with pytest.raises(AuditWriteError):
        store.audit.append_later("not a mapping", lambda r, e: None)  # type: ignore[arg-type]
    store.audit.append({"kind": "note", "n": 2})  # queued behind the first: both are committed by now
    assert len(results) == 1 and isinstance(results[0][0], AuditReceipt) and results[0][1] is None
    rows = [row["record"] for row in store.audit.query()]
    assert [r["n"] for r in rows] == [1, 2] and rows[0]["nested"]["k"] == "v"


def test_a_failing_callback_does_not_stop_the_writer(store):
    def boom(receipt, error):
        raise RuntimeError("the loop is gone")

    store.audit.append_later({"kind": "note", "n": 1}, boom)
    later = threading.Event()
    store.audit.append_later({"kind": "note", "n": 2}, lambda r, e: later.set())  # only the writer thread calls back
    assert later.wait(60)  # a bound against hanging, not a timing
    assert [row["record"]["n"] for row in store.audit.query()] == [1, 2] and store.audit.verify().ok
