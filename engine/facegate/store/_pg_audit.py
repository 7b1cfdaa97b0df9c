"""The decision log on PostgreSQL: one hash chain, appended to by every node, group-committed.

Each process batches its own callers exactly as on SQLite (``SQLiteAuditLog``: a lone append
commits on its caller's thread; concurrent ones queue for the writer thread and share one
commit; masking and encoding happen before, outside any lock).  A batch is one round trip on
the writer's own connection -- five statements sent together (psycopg's pipeline mode)::

    BEGIN; SET LOCAL synchronous_commit = off         -- 1. order, holding the chain's lock briefly
    SELECT ... FROM facegate_append(bodies, ...)     --    lock audit_head (FOR UPDATE), chain, insert
    COMMIT                                           --    lock released, WAL not yet flushed
    INSERT INTO audit_flush ... ON CONFLICT DO UPDATE -- 2. durability: a synchronous commit

``facegate_append`` (schema version 2, in ``_postgres.MIGRATIONS``) reads the head under a row
lock on ``audit_head``, computes each record's ``sha256`` envelope after it -- the same bytes as
``_chain.chain_hash`` -- and inserts the rows, their provision index and the new head.  The lock
gives every node's batches one total order: no two batches can chain after the same head, so
there are no forks and no gaps; it is held only while the server does that work (no client
round trip, no client scheduling inside it).  The lock is released before the WAL flush, so one
node's fsync does not hold up the others; the second, synchronous commit returns only once the
WAL is flushed past it -- and so past the first (PostgreSQL's WAL is one sequence and is flushed
in order; concurrent flushes from many writers are grouped by the server).  Receipts are handed
out only after that, and only once this process recomputed every returned hash from the head
and the bodies it sent (a server that hashed other bytes fails the batch: its callers are
denied).  So a receipted record is durable before the recognizer runs.  After a server crash the
chain is a prefix of what was committed: a batch whose flush had not happened is gone, and so is
everything chained after it, none of which had been receipted.  (With a standby, set
``synchronous_standby_names`` for the same guarantee across failover: durability is then what
the server's synchronous commit says.)  A lost connection fails the batch's callers
(``AuditWriteError``: the gate denies) and is re-opened at the next batch, so the log recovers
by itself when the server is back.  If the connection drops *during* ``COMMIT``, the batch may
or may not be in the log; its callers were denied either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg

from ._audit import SQLiteAuditLog, _Row
from ._errors import StoreError
from ._interface import AuditReceipt
from ._postgres import connect, one

if TYPE_CHECKING:
    from ._postgres import PostgresStore

# Binary parameters (%b): a text array in text format quotes and escapes every element in Python
# (regular-expression work for each '"' of each JSON body -- about 70 us a record); binary is a copy.
_APPEND = ("SELECT head_seq, head_hash, hashes FROM facegate_append("
           "%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::integer[])")
_FLUSH = ("INSERT INTO audit_flush (writer, n) VALUES (pg_backend_pid(), 1) "
          "ON CONFLICT (writer) DO UPDATE SET n = audit_flush.n + 1")


class PostgresAuditLog(SQLiteAuditLog):
    """``AuditLog`` on PostgreSQL.  Use ``PostgresStore.audit``; see the module docstring."""

    _DB_ERROR = (psycopg.Error, StoreError)
    _PROVISION_LIST = "string_agg(provision, chr(31))"
    _store: PostgresStore  # type: ignore[assignment]  # runs on PostgresStore's matching API

    def _open_writer(self) -> psycopg.Connection[Any] | None:
        return None  # connected at the first batch, and again after any failure

    def _writer(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = self._conn
        if conn is None or conn.closed or conn.broken:
            self._close_writer()
            conn = self._conn = connect(self._store.url, timeout=self._store.timeout)
        return conn

    def _close_writer(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _append_rows(self, prepared: list[_Row]) -> list[AuditReceipt]:
        """The batch in one round trip (see the module docstring); its receipts once durable."""
        names: list[str] = []
        rows: list[int] = []
        for row, (*_, provisions) in enumerate(prepared, start=1):
            if provisions is not None:
                for provision in json.loads(provisions):
                    names.append(provision)
                    rows.append(row)
        bodies, times, kinds, effects, decision_ids, provision_lists = (list(c) for c in zip(*prepared, strict=True))
        conn = self._writer()
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute("SET LOCAL synchronous_commit = off")
                cur = conn.execute(_APPEND, (bodies, times, kinds, effects, decision_ids, provision_lists, names, rows))
                conn.execute("COMMIT")
                conn.execute(_FLUSH)  # autocommit, synchronous: returns once the WAL is flushed past the batch
            seq, prev, hashes = one(cur)
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._close_writer()
            elif conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    self._close_writer()
            raise
        _, receipts = self._chain(prepared, int(seq), str(prev))
        if [r.hash for r in receipts] != hashes:
            raise StoreError(f"the server chained records {seq + 1}..{seq + len(prepared)} with other hashes than "
                             "facegate computes (a database encoding other than UTF8?); the records were not receipted")
        return receipts

    def _rows(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        with self._store.reading() as conn:
            try:
                yield from conn.stream(sql, params)
            except psycopg.Error as exc:
                raise StoreError(f"cannot read audit log `{self._store.path}`: {exc}") from exc
