"""Erased means gone: not returned by any query, and not in the database or WAL file bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from facegate.store import SQLiteStore

STAMPS = {"purpose": "access_control", "consent_id": None, "retention_days": 30, "location": "server",
          "model_id": "m1"}


def on_disk(path: Path) -> bytes:
    """Every byte SQLite keeps for the store: the database, its WAL and its shared-memory index."""
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def traces(vector: np.ndarray, data: bytes) -> list[int]:
    """Offsets of the vector's 32-byte pieces found in ``data`` (any one is a leak)."""
    raw = vector.astype("<f4").tobytes()
    return [i for i in range(0, len(raw), 32) if raw[i:i + 32] in data]


def test_an_erased_template_is_in_neither_file(tmp_path, unit):
    path = tmp_path / "g.db"
    vectors = {f"s{i}": unit() for i in range(300)}
    with SQLiteStore(path) as store:
        for subject, vector in vectors.items():
            store.gallery.enroll(subject, vector, **STAMPS)
        store.gallery.enroll("s150", unit(), **STAMPS)  # a second template of the same person
        assert traces(vectors["s150"], on_disk(path))  # the scan does find a stored template
        assert store.gallery.erase_subject("s150") == 2
        assert all(m.subject_id != "s150" for m in store.gallery.identify(vectors["s150"], k=300, threshold=-1))
        assert store.gallery.verify("s150", vectors["s150"], threshold=-1) == (False, None)
        data = on_disk(path)  # with the store still open
        assert traces(vectors["s150"], data) == []
        assert traces(vectors["s149"], data) and traces(vectors["s151"], data)  # neighbours untouched
    assert traces(vectors["s150"], on_disk(path)) == []


def test_each_erasure_path_leaves_no_trace(tmp_path, unit, monkeypatch):
    import datetime as dt

    import facegate.store._gallery as gallery_module

    path = tmp_path / "g.db"
    with SQLiteStore(path) as store:
        cid = store.consent.grant("by-consent", type="separate", given_by="subject", purposes=["access_control"])
        by_consent, by_retention, kept = unit(), unit(), unit()
        store.gallery.enroll("by-consent", by_consent, **{**STAMPS, "consent_id": cid})
        store.gallery.enroll("by-retention", by_retention, **{**STAMPS, "retention_days": 1})
        store.gallery.enroll("kept", kept, **STAMPS)
        assert store.withdraw_consent(cid) == ([cid], 1)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
        monkeypatch.setattr(gallery_module, "utc_now", lambda: later)
        assert store.gallery.purge_expired() == 1
        data = on_disk(path)
        assert traces(by_consent, data) == [] and traces(by_retention, data) == []
        assert traces(kept, data)


def test_a_reader_delays_the_scrub_until_it_is_gone(tmp_path, unit):
    path = tmp_path / "g.db"
    vector = unit()
    with SQLiteStore(path, busy_timeout=0.05) as store:
        store.gallery.enroll("alice", vector, **STAMPS)
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM template").fetchone()  # holds a snapshot of the WAL
        assert store.gallery.erase_subject("alice") == 1
        assert store.gallery.identify(vector, threshold=-1) == []
        assert store._scrub_pending  # the old frames could not be dropped yet
        reader.execute("COMMIT")
        reader.close()
        assert store.scrub() is True
        assert traces(vector, on_disk(path)) == []


def test_plain_sqlite_would_keep_the_bytes(tmp_path, unit):
    """Control: without secure_delete and a WAL truncation a deleted blob survives in the files."""
    path = tmp_path / "plain.db"
    vector = unit()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA secure_delete = OFF")
    conn.execute("CREATE TABLE t (v BLOB)")
    conn.execute("INSERT INTO t VALUES (?)", (vector.astype("<f4").tobytes(),))
    conn.execute("DELETE FROM t")
    assert traces(vector, on_disk(path))
    conn.close()
