"""``copy_store``: move a deployment's evidence from its SQLite file into a PostgreSQL database.

Everything is copied as stored, byte for byte where it matters: every audit record with its
``seq``, ``prev``, ``hash`` and exact body text (so the chain and every receipt ever handed out
stay valid), the provision index, the consent registry, the gallery (vectors as stored) and the
masking key or its fingerprint (so pseudonyms stay the same).  The source is read in one read
transaction (a consistent snapshot; stop the gates first, or later appends are not copied);
the target is written in one transaction, so a failed copy leaves it as it was.  Afterwards the
target's chain is verified from the database against the source's head as anchor.

The target must be empty of evidence (a freshly migrated database, or one a store was only
opened on); the copy refuses to merge two chains.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import StoreError
from ._interface import AuditReceipt, VerifyReport

BATCH = 2000


@dataclass(frozen=True)
class CopyReport:
    records: int
    consents: int
    templates: int
    head: AuditReceipt | None
    verify: VerifyReport


def _source(path: str) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise StoreError(f"cannot copy from `{path}`: no such file")
    conn = sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("BEGIN")  # one snapshot for the whole copy
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot copy from `{path}`: not a facegate store ({exc})") from None
    if version is None or int(version[0]) != 1:
        conn.close()
        raise StoreError(f"cannot copy from `{path}`: schema version {version and version[0]}, expected 1")
    return conn


def copy_store(source: str, target: str, *, timeout: float = 10.0) -> CopyReport:
    """Copy the SQLite store at ``source`` into the PostgreSQL database at ``target``; verify it."""
    import psycopg

    from ._postgres import PostgresStore, connect, migrate, one, redact

    migrate(target, timeout=timeout)
    src = _source(source)
    where = redact(target)
    try:
        with connect(target, timeout=timeout) as dst, dst.transaction():
            dst.execute("LOCK TABLE audit_head, audit_log, consent, template IN EXCLUSIVE MODE")
            seq = one(dst.execute("SELECT seq FROM audit_head"))[0]
            held = one(dst.execute("SELECT (SELECT count(*) FROM consent) + (SELECT count(*) FROM template)"))[0]
            if seq or held:
                raise StoreError(f"cannot copy into `{where}`: it already holds evidence "
                                 f"({seq} audit records, {held} consents and templates); copy into an empty database")
            counts = _copy_rows(src, dst)
            head = src.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            if head is not None:
                dst.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (head[0], head[1]))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read `{source}`: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"cannot copy into `{where}` (nothing was copied): {exc}") from exc
    finally:
        src.close()
    anchor = None if head is None else AuditReceipt(int(head[0]), str(head[1]))
    with PostgresStore(target, readonly=True, listen=False, timeout=timeout) as copied:
        report = copied.audit.verify(anchor)
    return CopyReport(counts[0], counts[1], counts[2], anchor, report)


def _copy_rows(src: sqlite3.Connection, dst: Any) -> tuple[int, int, int]:
    for key in ("mask_key", "mask_key_check", "gallery_generation"):
        row = src.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        dst.execute("DELETE FROM meta WHERE key = %s", (key,))
        if row is not None:
            dst.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (key, row[0]))
    records = _stream(src, dst, "SELECT seq, prev, hash, time, kind, effect, decision_id, provisions, body FROM audit_log "
                      "ORDER BY seq", "audit_log (seq, prev, hash, time, kind, effect, decision_id, provisions, body)",
                      "bigint text text text text text text text text")
    _stream(src, dst, "SELECT provision, seq FROM audit_provision ORDER BY seq", "audit_provision (provision, seq)",
            "text bigint")
    consents = _stream(src, dst, "SELECT id, subject_id, type, given_by, purposes, granted_at, expires_at, withdrawn_at "
                       "FROM consent", "consent (id, subject_id, type, given_by, purposes, granted_at, expires_at, "
                       "withdrawn_at)", "text text text text text text text text")
    templates = _stream(src, dst, "SELECT id, subject_id, model_id, dim, vector, purpose, consent_id, location, "
                        "enrolled_at, expires_at, decision_id FROM template", "template (id, subject_id, model_id, dim, "
                        "vector, purpose, consent_id, location, enrolled_at, expires_at, decision_id)",
                        "text text text integer bytea text text text text text text")
    return records, consents, templates


def _stream(src: sqlite3.Connection, dst: Any, select: str, into: str, types: str) -> int:
    """Copy the rows of ``select`` into ``into``, ``BATCH`` rows per statement (binary arrays:
    text-format arrays would be escaped element by element in Python, see ``_pg_audit``)."""
    casts = ", ".join(f"%b::{t}[]" for t in types.split())
    sql = f"INSERT INTO {into} SELECT * FROM unnest({casts})"
    cursor = src.execute(select)
    count = 0
    while rows := cursor.fetchmany(BATCH):
        dst.execute(sql, [list(column) for column in zip(*rows, strict=True)])
        count += len(rows)
    return count
