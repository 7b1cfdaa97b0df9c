"""The commit watch (``store._walwatch``): unchanged stamps only while nothing is committed; the gallery
and the API keys read the file again after any commit, and skip the query otherwise."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from facegate.service import KeyStore, Principal
from facegate.store import SQLiteStore
from facegate.store._walwatch import CommitWatch


def _wal_db(path):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    return conn


def test_a_stamp_changes_with_every_commit_from_any_connection_and_only_then(tmp_path):
    path = tmp_path / "w.db"
    ours, theirs = _wal_db(path), _wal_db(path)
    ours.execute("SELECT count(*) FROM t").fetchone()  # our connection has read: the -shm file is in place
    watch = CommitWatch(path)
    first = watch.stamp()
    assert first is not None and watch.stamp() == first  # nothing committed
    ours.execute("SELECT * FROM t").fetchall()
    assert watch.stamp() == first  # reads are not commits
    theirs.execute("INSERT INTO t VALUES (1)")
    second = watch.stamp()
    assert second != first
    ours.execute("INSERT INTO t VALUES (2)")  # our own commits count too
    third = watch.stamp()
    assert third not in (first, second)
    theirs.execute("BEGIN")
    theirs.execute("INSERT INTO t VALUES (3)")
    assert watch.stamp() == third  # not committed yet
    theirs.execute("COMMIT")
    assert watch.stamp() != third
    watch.close()
    assert watch.stamp() is None  # closed: ask the database
    ours.close()
    theirs.close()


def test_no_shm_file_means_no_stamp(tmp_path):
    assert CommitWatch(tmp_path / "absent.db").stamp() is None
    conn = sqlite3.connect(tmp_path / "rollback.db")  # a rollback-journal database has no -shm file
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    assert CommitWatch(tmp_path / "rollback.db").stamp() is None
    conn.close()


class _Counting:
    """The store's `reading()` with a count of its uses."""

    def __init__(self, store):
        self.store, self.calls, self.inner = store, 0, store.reading

    def __call__(self):
        self.calls += 1
        return self.inner()


def test_the_gallery_generation_is_read_again_after_any_commit_and_not_otherwise(tmp_path):
    path = tmp_path / "g.db"
    rng = np.random.default_rng(3)
    with SQLiteStore(path) as ours, SQLiteStore(path) as theirs:
        counting = _Counting(ours)
        ours.reading = counting  # type: ignore[method-assign]
        assert ours.gallery.count_subjects() == 0
        reads = counting.calls
        for _ in range(5):
            assert ours.gallery.count_subjects() == 0
        assert counting.calls == reads  # nothing committed: no query
        consent = theirs.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
        theirs.gallery.enroll("alice", rng.standard_normal(8), purpose="access_control", consent_id=consent, retention_days=30,
                              location="on_device", model_id="m")
        assert ours.gallery.count_subjects() == 1  # another connection's enrolment, seen at once
        assert counting.calls > reads
        ours.audit.append({"kind": "note", "time": "2026-12-03T12:00:00+00:00"})  # any commit: read again, same answer
        reads = counting.calls
        assert ours.gallery.count_subjects() == 1 and counting.calls == reads + 1
        theirs.gallery.erase_subject("alice")
        assert ours.gallery.count_subjects() == 0


def test_a_closed_store_does_not_answer_from_its_watch(tmp_path):
    store = SQLiteStore(tmp_path / "c.db")
    assert store.gallery.count_subjects() == 0
    store.close()
    assert store.commit_watch.stamp() is None
    with pytest.raises(Exception, match="closed"):
        store.gallery.count_subjects()


class _CountingConnection:
    def __init__(self, conn):
        self.conn, self.pragmas = conn, 0

    def execute(self, sql, *args):
        self.pragmas += "data_version" in sql
        return self.conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def test_key_checks_skip_the_query_until_the_key_file_changes_and_then_see_a_revocation(tmp_path):
    store = KeyStore(tmp_path / "keys.db")
    key_id, key = store.create("teller", ["decide"])
    assert isinstance(store.check(key), Principal)  # the first check asks SQLite (and opens the watch)
    counting = _CountingConnection(store._local.conn)
    store._local.conn = counting
    for _ in range(3):
        assert isinstance(store.check(key), Principal)
    assert counting.pragmas == 0  # the watch answered: nothing committed
    other = KeyStore(tmp_path / "keys.db")  # `facegate keys revoke`, another process
    assert other.revoke(key_id)
    assert store.check(key).reason == "revoked_key"  # the next check sees it
    store._local.conn = counting.conn
    store.close()
    other.close()


def test_a_thread_that_opens_the_key_file_after_every_connection_closed_sees_a_revocation(tmp_path):
    """When every connection to the key file closes, SQLite removes its ``-shm`` file and the next
    connection makes a new one: a watch mapped before then would read a header no commit changes
    any more.  So each thread's watch is opened after its own connection read the file, and lives
    with it."""
    import threading

    path = tmp_path / "keys.db"
    admin = KeyStore(path)
    key_id, key = admin.create("teller", ["decide"])
    admin.close()
    store = KeyStore(path)
    store._local.conn.close()  # the opening thread's connection gone, as a finished thread's goes
    store._local.conn = None

    def in_a_thread(work):
        out = []
        thread = threading.Thread(target=lambda: out.append(work()))
        thread.start()
        thread.join()
        return out[0]

    def check_twice():  # the thread then ends: its connection goes with its thread-local data, unclosed by us
        return store.check(key), store.check(key)  # the second through the watch

    assert all(isinstance(p, Principal) for p in in_a_thread(check_twice))
    import gc

    gc.collect()
    assert not (tmp_path / "keys.db-shm").exists()  # no connection left: SQLite removed the WAL index

    def check_revoke_check():
        assert isinstance(store.check(key), Principal) and isinstance(store.check(key), Principal)
        other = KeyStore(path)  # `facegate keys revoke`, another process
        assert other.revoke(key_id)
        other.close()
        result = store.check(key)
        store.close()
        return result

    assert in_a_thread(check_revoke_check).reason == "revoked_key"
