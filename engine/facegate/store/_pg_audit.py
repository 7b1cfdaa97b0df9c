"""The decision log on PostgreSQL: one hash chain, appended to by every node, group-committed.

Each process batches its own callers exactly as on SQLite (``SQLiteAuditLog``: a lone append
commits on its caller's thread; concurrent ones queue for the writer thread and share one
commit).  A batch is two transactions on the writer's own connection::

    BEGIN; SET LOCAL synchronous_commit = off                   -- 1. order: hold the lock briefly
    SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE   --    the chain's one lock
    INSERT INTO audit_log ... SELECT * FROM unnest(...)          --    all rows, one statement
    INSERT INTO audit_provision ...                              --    the provision index
    UPDATE audit_head SET seq = ..., hash = ...
    COMMIT                                                       --    lock released, WAL not yet flushed
    INSERT INTO audit_flush ... ON CONFLICT DO UPDATE            -- 2. durability: a synchronous commit

The row lock on ``audit_head`` gives every node's batches one total order: no two batches can
chain after the same head, so there are no forks and no gaps.  The lock is released before the
WAL flush, so one node's fsync does not hold up the others; the second, synchronous commit
returns only once the WAL is flushed past it -- and so past the first (PostgreSQL's WAL is one
sequence and is flushed in order; concurrent flushes from many writers are grouped by the
server).  Receipts are handed out only after that, so a receipted record is durable before the
recognizer runs.  After a server crash the chain is a prefix of what was committed: a batch
whose flush had not happened is gone, and so is everything chained after it, none of which had
been receipted.  (With a standby, set ``synchronous_standby_names`` for the same guarantee
across failover: durability is then what the server's synchronous commit says.)  A lost
connection fails the batch's callers (``AuditWriteError``: the gate denies) and is re-opened at
the next batch, so the log recovers by itself when the server is back.  If the connection drops
*during* ``COMMIT``, the batch may or may not be in the log; its callers were denied either way.
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

_INSERT = (
    "INSERT INTO audit_log (seq, prev, hash, time, kind, effect, decision_id, provisions, body) "
    "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
    "%s::text[], %s::text[], %s::text[])"
)
_LOCK_HEAD = ("BEGIN; SET LOCAL synchronous_commit = off; "
              "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
_FLUSH = ("INSERT INTO audit_flush (writer, n) VALUES (pg_backend_pid(), 1) "
          "ON CONFLICT (writer) DO UPDATE SET n = audit_flush.n + 1")
_INDEX = "INSERT INTO audit_provision (provision, seq) SELECT * FROM unnest(%s::text[], %s::bigint[])"


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
        """The batch in two round trips: lock and read the head; then, pipelined, the inserts,
        the head update, ``COMMIT`` and the durability commit (see the module docstring)."""
        conn = self._writer()
        try:
            cur = conn.execute(_LOCK_HEAD)
            while cur.description is None and cur.nextset():
                pass  # BEGIN and SET have no rows; the head is the last statement's
            seq, head = one(cur)
            rows, receipts = self._chain(prepared, int(seq), str(head))
            names: list[str] = []
            seqs: list[int] = []
            for row in rows:
                if row[7] is not None:
                    for provision in json.loads(row[7]):
                        names.append(provision)
                        seqs.append(row[0])
            with conn.pipeline():
                conn.execute(_INSERT, [list(column) for column in zip(*rows, strict=True)])
                if names:
                    conn.execute(_INDEX, (names, seqs))
                conn.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1",
                             (receipts[-1].seq, receipts[-1].hash))
                conn.execute("COMMIT")
                conn.execute(_FLUSH)  # autocommit, synchronous: returns once the WAL is flushed past the batch
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._close_writer()
            elif conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    self._close_writer()
            raise
        return receipts

    def _rows(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        with self._store.reading() as conn:
            try:
                yield from conn.stream(sql, params)
            except psycopg.Error as exc:
                raise StoreError(f"cannot read audit log `{self._store.path}`: {exc}") from exc
