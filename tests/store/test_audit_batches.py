"""A record that cannot be encoded fails only its own caller, even inside a shared batch."""

from __future__ import annotations

import threading

import pytest

from facegate.errors import AuditWriteError
from facegate.store import SQLiteStore


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
