"""The decision log: append-only, hash-chained, write-ahead, fail-closed."""

from __future__ import annotations

import io
import itertools
import json
import os
import sqlite3
import subprocess
import threading
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facegate.store import (
    AuditReceipt,
    AuditWriteError,
    SQLiteStore,
    StoreError,
    verify_lines,
)
from facegate.store._canonical import GENESIS, canonical_json, envelope
from facegate.store._chain import chain_hash


def _tamper(path: Path, *sql: str) -> None:
    """What an attacker with the file can do: drop the append-only triggers, then rewrite."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute("DROP TRIGGER audit_provision_no_update")
    conn.execute("DROP TRIGGER audit_provision_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.close()


def _filled(tmp_path: Path, make_decision, n: int = 10) -> tuple[Path, list[AuditReceipt]]:
    path = tmp_path / "log.db"
    with SQLiteStore(path) as store:
        receipts = [store.audit.append(make_decision(i)) for i in range(1, n + 1)]
    return path, receipts


def _problems(path: Path, anchor: AuditReceipt | None = None) -> list[str]:
    with SQLiteStore(path, readonly=True) as store:
        report = store.audit.verify(anchor)
    assert report.ok is (not report.problems)
    return report.problems


# -- the chain -----------------------------------------------------------------------------
def test_receipts_are_consecutive_and_chain_from_genesis(store, make_decision):
    receipts = [store.audit.append(make_decision(i)) for i in range(5)]
    assert [r.seq for r in receipts] == [1, 2, 3, 4, 5]
    rows = list(store.audit.query())
    assert rows[0]["prev"] == GENESIS
    for before, row in itertools.pairwise(rows):
        assert row["prev"] == before["hash"]
    for row, receipt in zip(rows, receipts):
        # an auditor can recompute every hash from the stored record alone
        assert chain_hash(row["seq"], row["prev"], canonical_json(row["record"])) == receipt.hash
    report = store.audit.verify()
    assert report.ok and report.checked == 5 and report.head == receipts[-1]


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
                    max_leaves=20),
       st.integers(1, 10**9), st.text("0123456789abcdef", min_size=64, max_size=64))
def test_envelope_is_the_canonical_json_of_prev_record_seq(record, seq, prev):
    """The hash input is built by concatenation for speed; it must equal the documented encoding."""
    body = canonical_json(record)
    assert envelope(seq, prev, body) == canonical_json({"prev": prev, "record": record, "seq": seq})
    assert json.loads(body) == record


def test_the_log_has_no_update_or_delete_and_the_database_refuses_both(store, backend, make_decision):
    store.audit.append(make_decision(1))
    assert not any(hasattr(store.audit, name) for name in ("update", "delete", "remove", "truncate"))
    conn = backend.raw(backend.where(store))
    statements = ["UPDATE audit_log SET effect = 'permit'", "DELETE FROM audit_log", "DELETE FROM audit_provision"]
    if backend.name == "postgresql":
        statements += ["TRUNCATE audit_log", "TRUNCATE audit_provision"]
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            conn.execute(statement)
    conn.close()
    assert store.audit.verify().ok


def test_verify_names_an_edited_record(tmp_path, make_decision):
    path, _ = _filled(tmp_path, make_decision)
    _tamper(path, "UPDATE audit_log SET body = replace(body, '\"deny\"', '\"permit\"') WHERE seq = 4")
    problems = _problems(path)
    assert any(p.startswith("seq 4: hash does not match") for p in problems), problems


def test_verify_names_an_edit_whose_hash_was_recomputed(tmp_path, make_decision):
    """Rewriting a record *and* its hash still breaks the next record's link."""
    path, _ = _filled(tmp_path, make_decision)
    conn = sqlite3.connect(path)
    seq, prev, body = conn.execute("SELECT seq, prev, body FROM audit_log WHERE seq = 4").fetchone()
    conn.close()
    forged = body.replace('"deny"', '"permit"')
    _tamper(path, f"UPDATE audit_log SET body = '{forged}', effect = 'permit', "
                  f"hash = '{chain_hash(seq, prev, forged)}' WHERE seq = 4")
    problems = _problems(path)
    assert any(p.startswith("seq 5: prev does not match the hash of seq 4") for p in problems), problems


def test_verify_names_a_removed_record(tmp_path, make_decision):
    path, _ = _filled(tmp_path, make_decision)
    _tamper(path, "DELETE FROM audit_log WHERE seq = 6")
    problems = _problems(path)
    assert any(p.startswith("seq 7: expected seq 6") for p in problems), problems


def test_verify_names_records_removed_from_the_start(tmp_path, make_decision):
    path, _ = _filled(tmp_path, make_decision)
    _tamper(path, "DELETE FROM audit_log WHERE seq <= 2")
    assert any(p.startswith("seq 3: expected seq 1") for p in _problems(path))


def test_verify_names_reordered_records(tmp_path, make_decision):
    path, _ = _filled(tmp_path, make_decision)
    _tamper(path, "UPDATE audit_log SET seq = -3 WHERE seq = 3", "UPDATE audit_log SET seq = 3 WHERE seq = 8",
            "UPDATE audit_log SET seq = 8 WHERE seq = -3")
    problems = _problems(path)
    assert any(p.startswith("seq 3:") for p in problems) and any(p.startswith("seq 8:") for p in problems)


def test_verify_catches_index_rows_altered_to_hide_a_decision(tmp_path, make_decision):
    """Filters read indexed columns, not the hashed record: verify re-derives them."""
    path, _ = _filled(tmp_path, make_decision)
    _tamper(path, "UPDATE audit_log SET effect = 'permit' WHERE seq = 2",
            "DELETE FROM audit_provision WHERE seq = 5")
    problems = _problems(path)
    assert any(p.startswith("seq 2: index columns") for p in problems)
    assert any(p.startswith("seq 5: index columns") for p in problems)


def test_tail_truncation_is_caught_against_an_anchor(tmp_path, make_decision):
    """Without an external anchor, cutting the end of a chain leaves a valid chain; with one, not."""
    path, receipts = _filled(tmp_path, make_decision)
    anchor = receipts[-1]
    assert _problems(path, anchor) == []
    _tamper(path, "DELETE FROM audit_log WHERE seq >= 9")
    assert _problems(path) == []  # the honest limit of a bare hash chain
    assert _problems(path, anchor) == ["seq 10: anchored record is missing (log truncated after seq 8)"]


def test_a_rewritten_chain_does_not_match_its_anchor(tmp_path, make_decision):
    path, receipts = _filled(tmp_path, make_decision, n=3)
    forged = AuditReceipt(receipts[1].seq, "f" * 64)
    assert _problems(path, forged) == ["seq 2: hash differs from the anchor (record or chain rewritten)"]


# -- masking on the way in -----------------------------------------------------------------
def test_identifiers_are_keyed_hashes_and_the_file_never_holds_them(store, backend, make_decision):
    store.audit.append(make_decision(7))
    record = next(store.audit.query())["record"]
    assert record["request"]["subject"]["id"] == store.audit.pseudonym("guest-7")
    assert record["request"]["actor"]["id"] == store.audit.pseudonym("hotel-42")
    assert record["request"]["storage"]["raw_image"] == "discard"
    store.close()
    data = backend.stored_bytes(store)
    assert store.audit.pseudonym("guest-7").encode()[-16:] in data  # the check can see what is stored
    assert b"guest-7" not in data and b"hotel-42" not in data


# -- queries and export ------------------------------------------------------------------
def test_query_filters_by_time_provision_effect_kind_and_decision(store, make_decision):
    store.audit.append(make_decision(1))
    store.audit.append(make_decision(2, determining=[{"rule": "r", "provision": "CN23-14", "article": "14"}]))
    store.audit.append({"kind": "outcome", "decision_id": "dec-2", "time": "2025-06-01T08:00:03Z",
                        "recognizer": {"id": "fake", "version": "1"}, "outcome": "not_executed"})

    def seqs(**f):
        return [r["seq"] for r in store.audit.query(**f)]

    assert seqs() == [1, 2, 3]
    assert seqs(provision="CN23-14") == [2]
    assert seqs(provision="CN23-05") == [1]
    assert seqs(effect="deny") == [2]
    assert seqs(kind="outcome") == [3]
    assert seqs(decision_id="dec-2") == [2, 3]
    assert seqs(since="2025-06-01T08:00:02Z") == [2, 3]
    assert seqs(until="2025-06-01T10:00:02+02:00") == [1]  # until is exclusive, offsets honoured
    assert seqs(limit=2, newest_first=True) == [3, 2]
    with pytest.raises(StoreError, match="time filter"):
        list(store.audit.query(since="yesterday"))


def test_export_lines_verify_on_their_own_and_catch_an_edit(store, make_decision):
    for i in range(6):
        store.audit.append(make_decision(i))
    buffer = io.StringIO()
    assert store.audit.export_jsonl(buffer) == 6
    lines = buffer.getvalue().splitlines()
    assert verify_lines(lines).ok
    assert verify_lines([json.dumps(json.loads(line), indent=1).replace("\n", "") for line in lines]).ok
    edited = [*lines[:2], lines[2].replace('"deny"', '"permit"'), *lines[3:]]
    assert edited != lines
    assert verify_lines(edited).problems[0].startswith("seq 3: hash does not match")
    filtered = io.StringIO()
    store.audit.export_jsonl(filtered, effect="permit")
    assert not verify_lines(filtered.getvalue().splitlines()).ok
    assert verify_lines(filtered.getvalue().splitlines(), gaps_allowed=True).ok


# -- group commit ---------------------------------------------------------------------------
def test_concurrent_appends_share_commits_and_form_one_chain(store, make_decision):
    threads, per = 16, 50
    receipts: list[AuditReceipt] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(per):
            receipt = store.audit.append(make_decision(t * per + i))
            with lock:
                receipts.append(receipt)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(r.seq for r in receipts) == list(range(1, threads * per + 1))
    assert store.audit.commits < threads * per  # some appends shared an fsync
    report = store.audit.verify()
    assert report.ok and report.checked == threads * per


def test_a_lone_append_commits_on_its_own_thread(store, make_decision, monkeypatch):
    writers: list[int] = []
    real = type(store.audit)._append_rows

    def recording(self, rows):
        writers.append(threading.get_ident())
        return real(self, rows)

    monkeypatch.setattr(type(store.audit), "_append_rows", recording)
    assert store.audit.append(make_decision(1)).seq == 1
    assert writers == [threading.get_ident()]  # no hand-off to the writer thread when nothing waits


def test_appends_during_a_direct_commit_queue_for_the_writer_and_chain_on(store, backend, make_decision, monkeypatch):
    real = type(store.audit)._append_rows
    entered, release = threading.Event(), threading.Event()
    writers: list[tuple[int, int]] = []

    def slow_first(self, rows):
        writers.append((threading.get_ident(), len(rows)))
        if len(writers) == 1:
            entered.set()
            assert release.wait(10)
        return real(self, rows)

    monkeypatch.setattr(type(store.audit), "_append_rows", slow_first)
    first: list[AuditReceipt] = []
    leader = threading.Thread(target=lambda: first.append(store.audit.append(make_decision(0))))
    leader.start()
    assert entered.wait(10)  # the lone append is committing on its own thread, and is held there
    late: list[AuditReceipt] = []
    lock = threading.Lock()

    def follower(i: int) -> None:
        receipt = store.audit.append(make_decision(i))
        with lock:
            late.append(receipt)

    followers = [threading.Thread(target=follower, args=(i,)) for i in range(1, 6)]
    for t in followers:
        t.start()
    closer = threading.Thread(target=store.close)  # must wait for the held commit and the queue
    release.wait(0.3)  # let the followers queue behind the held commit
    closer.start()
    release.set()
    for t in [leader, *followers, closer]:
        t.join(10)
    assert first[0].seq == 1 and sorted(r.seq for r in late) == [2, 3, 4, 5, 6]
    assert writers[0] == (leader.ident, 1)
    assert sum(n for _, n in writers) == 6 and len(writers) < 6  # the queued ones shared a commit
    with backend.open(backend.where(store), readonly=True) as reopened:
        report = reopened.audit.verify()
    assert report.ok and report.checked == 6


def test_a_failed_direct_commit_fails_its_caller_and_the_log_recovers(store, backend, make_decision, monkeypatch):
    real = type(store.audit)._append_rows
    calls = []

    def failing_once(self, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise backend.db_error()("disk I/O error")
        return real(self, rows)

    monkeypatch.setattr(type(store.audit), "_append_rows", failing_once)
    with pytest.raises(AuditWriteError, match="disk I/O error") as exc:
        store.audit.append(make_decision(1))
    _one_line_naming(exc, store.path)
    assert store.audit.append(make_decision(2)).seq == 1  # nothing of the failed append was kept
    assert store.audit.verify().ok


def test_append_many_is_one_contiguous_run(store, make_decision):
    store.audit.append(make_decision(0))
    receipts = store.audit.append_many([make_decision(i) for i in range(1, 4)])
    assert [r.seq for r in receipts] == [2, 3, 4]
    assert store.audit.append_many([]) == []


def test_two_stores_on_one_file_keep_one_chain(tmp_path, make_decision):
    """Two processes (here: two stores) appending to one file must not fork the chain."""
    path = tmp_path / "shared.db"
    with SQLiteStore(path) as first, SQLiteStore(path) as second:
        for i in range(20):
            (first if i % 3 else second).audit.append(make_decision(i))
        report = first.audit.verify()
    assert report.ok and report.checked == 20


# -- fail closed ------------------------------------------------------------------------------
def _one_line_naming(exc: pytest.ExceptionInfo[AuditWriteError], path: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and f"`{path}`" in message, message


def test_append_to_a_closed_store_raises(tmp_path, make_decision):
    store = SQLiteStore(tmp_path / "closed.db")
    store.close()
    with pytest.raises(AuditWriteError) as exc:
        store.audit.append(make_decision())
    _one_line_naming(exc, store.path)
    store.close()  # idempotent


def test_append_to_a_read_only_store_raises(tmp_path, make_decision):
    path = tmp_path / "ro.db"
    SQLiteStore(path).close()
    with SQLiteStore(path, readonly=True) as store, pytest.raises(AuditWriteError) as exc:
        store.audit.append(make_decision())
    _one_line_naming(exc, store.path)


def test_append_to_a_read_only_file_raises(tmp_path, make_decision, read_only):
    path = tmp_path / "ro-file.db"
    with SQLiteStore(path) as store:
        store.audit.append(make_decision(1))
    read_only(path)
    with SQLiteStore(path) as store:
        with pytest.raises(AuditWriteError) as exc:
            store.audit.append(make_decision(2))
        _one_line_naming(exc, store.path)
        assert [r["seq"] for r in store.audit.query()] == [1]


def test_a_full_database_raises_and_loses_nothing_acknowledged(tmp_path, make_decision):
    """SQLITE_FULL (here from a page limit) fails the batch; everything receipted is still there.

    (SQLite only: on PostgreSQL a full disk is the server's failure, seen as a failed or lost
    connection -- covered by the server-stopped fault test.)"""
    store = SQLiteStore(tmp_path / "full.db")
    receipts = [store.audit.append(make_decision(i)) for i in range(3)]
    writer = store.audit._conn
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(AuditWriteError, match="full") as exc:
        for i in range(200):
            receipts.append(store.audit.append(make_decision(10 + i, padding="x" * 3000)))
    _one_line_naming(exc, store.path)
    writer.execute("PRAGMA max_page_count = 1073741823")
    receipts.append(store.audit.append(make_decision(999)))
    logged = {(r["seq"], r["hash"]) for r in store.audit.query()}
    assert {(r.seq, r.hash) for r in receipts} <= logged
    assert store.audit.verify().ok
    store.close()


def test_a_locked_database_raises_then_recovers(tmp_path, make_decision):
    path = tmp_path / "locked.db"
    with SQLiteStore(path, busy_timeout=0.05) as store:
        store.audit.append(make_decision(1))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(AuditWriteError, match="locked") as exc:
            store.audit.append(make_decision(2))
        _one_line_naming(exc, store.path)
        holder.execute("ROLLBACK")
        holder.close()
        assert store.audit.append(make_decision(3)).seq == 2
        assert store.audit.verify().ok


def test_an_unloggable_record_fails_only_its_caller(store, make_decision):
    with pytest.raises(AuditWriteError, match="not JSON") as exc:
        store.audit.append(make_decision(1, extra=object()))
    _one_line_naming(exc, store.path)
    with pytest.raises(AuditWriteError, match="time"):
        store.audit.append(make_decision(1, time="last tuesday"))
    with pytest.raises(AuditWriteError, match="mapping"):
        store.audit.append(["not", "a", "record"])  # type: ignore[arg-type]
    assert store.audit.append(make_decision(2)).seq == 1


def test_a_record_without_time_is_stamped(store):
    store.audit.append({"kind": "outcome", "decision_id": "d"})
    record = next(store.audit.query())["record"]
    assert record["time"].endswith("Z")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 384 KiB tmpfs: a real ENOSPC.  Needs mount rights (root in CI); skipped elsewhere."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mount_point)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_raises_and_loses_nothing_acknowledged(tiny_disk, make_decision):
    path = tiny_disk / "full.db"
    receipts = []
    with SQLiteStore(path) as store:
        with pytest.raises(AuditWriteError, match="full") as exc:
            for i in range(10_000):
                receipts.append(store.audit.append(make_decision(i, padding="x" * 2000)))
        _one_line_naming(exc, store.path)
        assert receipts  # it did write until the disk was full
        logged = {(r["seq"], r["hash"]) for r in store.audit.query()}
        assert {(r.seq, r.hash) for r in receipts} <= logged
        assert store.audit.verify().ok


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_store_inherited_through_fork_fails_closed_instead_of_hanging(tmp_path, make_decision):
    """A pre-fork server (gunicorn --preload) must open a store per worker; an inherited one
    has no writer thread, so appending would wait forever -- it must raise at once instead."""
    path = tmp_path / "fork.db"
    with SQLiteStore(path) as store:
        store.audit.append(make_decision(1))
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # the child: report what happens, never run pytest's teardown
            os.close(read)
            outcome = b"hung-or-appended"
            try:
                store.audit.append(make_decision(2))
            except AuditWriteError as exc:
                outcome = b"refused: " + str(exc).encode()
            try:
                store.consent.lookup("alice")
            except StoreError as exc:
                outcome += b" | " + str(exc).encode()
            store.close()
            os.write(write, outcome)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            said = pipe.read().decode()
        assert os.waitpid(pid, 0)[1] == 0
        assert said.startswith("refused: ") and "forked" in said and said.count("forked") == 2, said
        assert store.audit.append(make_decision(3)).seq == 2  # the parent's store is unharmed
        assert store.audit.verify().ok
