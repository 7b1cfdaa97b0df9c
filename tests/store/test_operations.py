"""Operating a PostgreSQL store: schema versions and `store migrate`, clear connection errors,
`store copy` from SQLite (chain verified after), and the audit commands on a URL."""

from __future__ import annotations

import argparse
import io

import numpy as np
import psycopg
import pytest
from pgserver import PASSWORD

from facegate.store import AuditWriteError, PostgresStore, SQLiteStore, StoreError, open_store
from facegate.store._chain import chain_hash
from facegate.store._cli import add_audit_commands
from facegate.store._postgres import MIGRATIONS, SCHEMA_VERSION
from facegate.store._store_cli import register


def run(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="facegate")
    sub = parser.add_subparsers(dest="command")
    add_audit_commands(sub)
    register(sub)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out, err), out.getvalue(), err.getvalue()


@pytest.fixture
def empty_db(pg_server):
    """A database with nothing in it (not from the migrated template)."""
    import uuid

    return pg_server.create_database(f"e_{uuid.uuid4().hex[:12]}")


# -- schema versions -------------------------------------------------------------------------
def test_migrate_creates_the_schema_once_and_is_idempotent(empty_db):
    with pytest.raises(StoreError, match="empty database: run `facegate store migrate"):
        PostgresStore(empty_db, create=False)
    where = empty_db.replace(":" + PASSWORD, "")
    assert run(["store", "migrate", empty_db])[:2] == (0, f"ok: store `{where}` schema version {SCHEMA_VERSION} (was 0)\n")
    code, out, _ = run(["store", "migrate", empty_db])
    assert code == 0 and "(already current)" in out
    with PostgresStore(empty_db, create=False) as store:
        assert store.audit.append({"kind": "decision", "time": "2025-06-01T08:00:00Z"}).seq == 1


def test_a_schema_from_another_version_is_refused_with_what_to_do(empty_db):
    run(["store", "migrate", empty_db])
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=f"schema version 99, newer than this facegate's {SCHEMA_VERSION}"):
        PostgresStore(empty_db)
    code, _, err = run(["store", "migrate", empty_db])
    assert code == 2 and "upgrade facegate" in err
    with psycopg.connect(empty_db, autocommit=True) as conn:  # tables there, version gone: not guessed at
        conn.execute("DELETE FROM meta WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="cannot migrate store .*already exists") as exc:
        PostgresStore(empty_db)
    assert "\n" not in str(exc.value)


def test_a_version_1_log_is_refused_until_migrated_then_chained_after(empty_db):
    """Version 2 adds the server-side append; records written under version 1 stay, the chain goes on."""
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(MIGRATIONS[1])
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        prev = "0" * 64
        for seq in (1, 2):
            body = f'{{"kind":"decision","n":{seq},"time":"2025-06-01T08:00:0{seq}.000000Z"}}'
            digest = chain_hash(seq, prev, body)
            conn.execute("INSERT INTO audit_log (seq, prev, hash, time, kind, body) VALUES (%s, %s, %s, %s, %s, %s)",
                         (seq, prev, digest, f"2025-06-01T08:00:0{seq}.000000Z", "decision", body))
            prev = digest
        conn.execute("UPDATE audit_head SET seq = 2, hash = %s", (prev,))
    with pytest.raises(StoreError, match=f"schema version 1, this facegate needs {SCHEMA_VERSION}: run `facegate store migrate"):
        PostgresStore(empty_db)
    assert run(["store", "migrate", empty_db])[0] == 0
    with PostgresStore(empty_db) as store:
        receipt = store.audit.append({"kind": "decision", "time": "2025-06-01T08:00:03Z", "note": "ü €"})
        assert receipt.seq == 3
        report = store.audit.verify(anchor=receipt)
        assert report.ok and report.checked == 3, report.problems


def test_a_database_not_in_utf8_is_refused(pg_server):
    """The chain hashes UTF-8 bytes, on the server too: another encoding is refused at open."""
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    try:
        with pytest.raises(StoreError, match="encoding LATIN1; facegate needs UTF8"):
            PostgresStore(pg_server.url("latin"))
    finally:
        pg_server.drop_database("latin")


def test_nodes_opening_an_empty_database_together_create_the_schema_once(empty_db):
    import threading

    stores, errors = [], []

    def open_one() -> None:
        try:
            stores.append(PostgresStore(empty_db))
        except StoreError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 6
    assert len({s.audit.pseudonym("alice") for s in stores}) == 1  # one masking key for all
    for s in stores:
        s.close()


# -- connection errors ----------------------------------------------------------------------
@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://u:p@127.0.0.1:1/x?sslmode=bogus", "invalid sslmode value|not a valid PostgreSQL URL"),
    ("postgresql://u:p@127.0.0.1:1/x?nonsense=1", "not a valid PostgreSQL URL"),
    ("postgresql://u:p@127.0.0.1:5432", "names no database"),
])
def test_a_malformed_url_is_refused_before_connecting(url, message):
    with pytest.raises(StoreError, match=message) as exc:
        open_store(url)
    assert "\n" not in str(exc.value) and ":p@" not in str(exc.value)  # one line, no password


def test_wrong_credentials_a_missing_database_and_no_server_are_told_apart(pg_server):
    wrong = pg_server.url("postgres", password="not-the-password")
    with pytest.raises(StoreError, match="wrong credentials") as exc:
        open_store(wrong)
    assert "not-the-password" not in str(exc.value)
    with pytest.raises(StoreError, match="database `no_such_db` does not exist"):
        open_store(pg_server.url("no_such_db"))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreError, match="no PostgreSQL server answers there"):
        open_store(f"postgresql://postgres:x@127.0.0.1:{port}/facegate", timeout=2)
    code, _, err = run(["audit", "verify", "--db", wrong])
    assert code == 2 and err.startswith("error: cannot open store") and "wrong credentials" in err


# -- copy ------------------------------------------------------------------------------------
def _filled_sqlite(path, unit):
    with SQLiteStore(path) as store:
        receipts = [store.audit.append({"kind": "decision", "decision_id": f"d{i}", "effect": "permit",
                                        "time": "2025-06-01T08:00:00Z", "request": {"subject": {"id": f"s{i}"}},
                                        "determining": [{"provision": "CN23-05"}]}) for i in range(50)]
        cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
        alice = unit()
        store.gallery.enroll("alice", alice, purpose="access_control", consent_id=cid, retention_days=30,
                             location="server", model_id="m1")
        store.gallery.enroll_many([{"subject_id": f"p{i}", "vector": unit(), "purpose": "access_control",
                                    "consent_id": None, "retention_days": 30, "location": "server",
                                    "model_id": "m1"} for i in range(20)])
        head, pseudonym = store.audit.head(), store.audit.pseudonym("alice")
    return receipts, head, pseudonym, alice, cid


def test_copy_moves_everything_and_the_chain_verifies_with_every_receipt(tmp_path, empty_db, unit):
    source = tmp_path / "site.db"
    receipts, head, pseudonym, alice, cid = _filled_sqlite(source, unit)
    code, out, err = run(["store", "copy", str(source), empty_db])
    assert code == 0, err
    assert f"ok: copied chain verified, {head.seq} records, head #{head.seq} {head.hash}" in out
    with PostgresStore(empty_db) as copied:
        assert copied.audit.head() == head
        logged = {r["seq"]: r["hash"] for r in copied.audit.query()}
        assert all(logged[r.seq] == r.hash for r in receipts)  # every receipt ever handed out still holds
        assert copied.audit.pseudonym("alice") == pseudonym  # same masking key
        assert [r["seq"] for r in copied.audit.query(provision="CN23-05")] == [r.seq for r in receipts]
        assert copied.consent.lookup("alice", "access_control")["record_id"] == cid
        assert copied.gallery.identify(alice, threshold=0.99)[0].subject_id == "alice"
        assert copied.gallery.count_subjects() == 21
        nxt = copied.audit.append({"kind": "decision", "time": "2025-06-02T08:00:00Z"})
        assert nxt.seq == head.seq + 1 and copied.audit.verify().ok  # the chain goes on in PostgreSQL


def test_copy_refuses_a_database_that_already_holds_evidence_and_changes_nothing(tmp_path, empty_db, unit):
    source = tmp_path / "site.db"
    _filled_sqlite(source, unit)
    with PostgresStore(empty_db) as other:
        other.audit.append({"kind": "decision", "time": "2025-06-01T08:00:00Z"})
    code, _, err = run(["store", "copy", str(source), empty_db])
    assert code == 2 and "already holds evidence" in err
    with PostgresStore(empty_db) as other:
        assert other.audit.verify().checked == 1


def test_copy_refuses_what_is_not_a_store(tmp_path, empty_db):
    (tmp_path / "junk.db").write_bytes(b"not sqlite")
    code, _, err = run(["store", "copy", str(tmp_path / "junk.db"), empty_db])
    assert code == 2 and "not a facegate store" in err
    code, _, err = run(["store", "copy", str(tmp_path / "missing.db"), empty_db])
    assert code == 2 and "no such file" in err
    assert run(["store", "copy", str(tmp_path / "junk.db"), str(tmp_path / "b.db")])[0] == 2


def test_audit_commands_work_on_a_postgresql_url(backend, make_decision):
    target = backend.target()
    with backend.open(target) as store:
        for i in range(5):
            store.audit.append(make_decision(i))
    code, out, _ = run(["audit", "verify", "--db", target])
    assert code == 0 and out.startswith("ok: 5 records, chain intact")
    code, out, _ = run(["audit", "show", "--db", target, "--limit", "2"])
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["#4", "#5"]
    code, out, _ = run(["audit", "export", "--db", target])
    assert code == 0 and len(out.splitlines()) == 5
    with backend.raw(target) as conn:
        if backend.name == "postgresql":
            conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
        else:
            conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET body = replace(body, '\"deny\"', '\"permit\"') WHERE seq = 1")
    code, out, _ = run(["audit", "verify", "--db", target])
    assert code == 1 and "seq 1: hash does not match" in out


def test_open_store_picks_the_backend_by_its_argument(tmp_path, pg_server):
    with open_store(tmp_path / "a.db") as s:
        assert isinstance(s, SQLiteStore)
    with open_store("a.db", base=tmp_path) as s:
        assert s.path == str(tmp_path / "a.db")
    url = pg_server.url("facegate_template")
    with open_store(url, readonly=True, listen=False) as s:
        assert isinstance(s, PostgresStore) and PASSWORD not in repr(s)
    assert np.isfinite(0.0)


def test_a_server_that_chains_other_bytes_fails_the_batch_closed(empty_db):
    """The receipts are checked against the hashes facegate computes: a server-side function that
    hashed differently (here: a space in the envelope) denies its callers instead of receipting."""
    with PostgresStore(empty_db) as store:
        assert store.audit.append({"kind": "decision", "time": "2025-06-01T08:00:00Z"}).seq == 1
        with psycopg.connect(empty_db, autocommit=True) as conn:
            conn.execute(MIGRATIONS[2].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
                         .replace("""',"seq":'""", """',"seq": '"""))
        with pytest.raises(AuditWriteError, match="other hashes than facegate computes"):
            store.audit.append({"kind": "decision", "time": "2025-06-01T08:00:01Z"})
