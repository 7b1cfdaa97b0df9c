"""The decision log: masked, hash-chained, append-only, written ahead with group commit.

Chain: record ``n`` stores ``prev`` (record ``n-1``'s hash, 64 zeros for ``n = 1``) and
``hash = sha256(envelope(n, prev, body))`` where ``body`` is the canonical JSON of the masked
record, stored verbatim (see ``_canonical``).  Editing, removing or reordering a record breaks
the hash of that record or the ``prev`` link of the next; ``verify`` names the sequence number.

Group commit: when nothing is queued or being written, ``append`` commits its record itself
(one record, one fsync, no thread hand-off).  Otherwise it puts the record in the open batch and
waits: one writer thread swaps the batch out, masks and encodes each record (one that cannot be
encoded fails its own caller only; ``append_many`` encodes in the caller, all or none), assigns
sequence numbers and hashes inside ``BEGIN IMMEDIATE`` (reading the head from the file, so two
processes sharing a file still form one chain), inserts all rows and commits once: with ``synchronous=FULL`` the
WAL is fsynced before ``COMMIT`` returns.  Only then is every waiter handed its receipt.  A
failed batch is rolled back and each of its callers gets ``AuditWriteError``; nothing is
acknowledged that is not on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writers rely on SQLite's locking alone
    fcntl = None  # type: ignore[assignment]

from ._canonical import GENESIS, canonical_json, canonical_json_floatless, iso, utc_now
from ._chain import ChainChecker, chain_hash
from ._errors import AuditWriteError, StoreError
from ._interface import AuditReceipt, Timestamp, VerifyReport
from ._masking import Masker

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

_Row = tuple[str, str, str | None, str | None, str | None, str | None]  # body + index fields


class _Batch:
    __slots__ = ("error", "failed", "items", "receipts", "waiters")

    def __init__(self) -> None:
        # Each item is a prepared row, or a raw record the writer prepares (``append``).
        self.items: list[_Row | Mapping[str, Any]] = []
        self.waiters: list[Any] = []  # one held lock per caller, released when the batch is done
        self.receipts: list[AuditReceipt | None] = []
        self.failed: dict[int, str] = {}  # item index -> why that record alone could not be logged
        self.error: str | None = None

    def finish(self) -> None:
        for waiter in self.waiters:
            waiter.release()


class _Later:
    """A waiter that calls back instead of blocking (``append_later``): ``release`` hands over the result."""

    __slots__ = ("batch", "done", "index")

    def __init__(self, batch: _Batch, index: int, done: Callable[[AuditReceipt | None, str | None], None]) -> None:
        self.batch, self.index, self.done = batch, index, done

    def release(self) -> None:
        batch, index = self.batch, self.index
        error = batch.error if batch.error is not None else batch.failed.get(index)
        try:
            self.done(None if error is not None else batch.receipts[index], error)
        except Exception:  # noqa: BLE001 - a caller's callback (its event loop gone) must not stop the writer
            pass


def index_fields(record: Mapping[str, Any]) -> tuple[str, str | None, str | None, str | None, str | None]:
    """The columns derived from a (masked) record: time, kind, effect, decision id, provisions (JSON)."""
    time = iso(record["time"])
    kind = record.get("kind")
    effect = record.get("effect")
    decision_id = record.get("decision_id")
    provisions: set[str] = set()
    determining = record.get("determining")
    if isinstance(determining, list):
        for item in determining:
            if isinstance(item, Mapping) and isinstance(item.get("provision"), str):
                provisions.add(item["provision"])
    return (
        time,
        kind if isinstance(kind, str) else None,
        effect if isinstance(effect, str) else None,
        None if decision_id is None else str(decision_id),
        _provisions_json(tuple(sorted(provisions))) if provisions else None,
    )


_PROVISIONS: dict[tuple[str, ...], str] = {}


def _provisions_json(provisions: tuple[str, ...]) -> str:
    """The ``provisions`` column: a JSON array (the same few sets recur, so they are cached)."""
    known = _PROVISIONS.get(provisions)
    if known is None:
        known = canonical_json(list(provisions))
        if len(_PROVISIONS) < 1024:
            _PROVISIONS[provisions] = known
    return known


MAX_ROWS_PER_STATEMENT = 2048  # 9 columns: 18,432 parameters, under SQLite's 32,766
_COLUMNS = 9
_ROW_SQL = "(" + ", ".join(["?"] * _COLUMNS) + ")"
_NULL_ROW = (None,) * _COLUMNS
_INSERT_SQL: dict[int, str] = {}


def _padded_insert(rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    size = 1
    while size < len(rows):
        size *= 2
    sql = _INSERT_SQL.get(size)
    if sql is None:
        sql = _INSERT_SQL[size] = (
            "INSERT INTO audit_log (seq, prev, hash, time, kind, effect, decision_id, provisions, body) "
            "SELECT * FROM (VALUES " + ", ".join([_ROW_SQL] * size) + ") WHERE column1 IS NOT NULL"
        )
    params = [value for row in rows for value in row]
    params.extend(_NULL_ROW * (size - len(rows)))
    return sql, params


class SQLiteAuditLog:
    """``AuditLog`` over the store's file.  Use ``SQLiteStore.audit``; see the module docstring.

    The batching, encoding, reading and verifying here are the backend-neutral part; a subclass
    for another database replaces ``_open_writer``, ``_append_rows``, ``_close_writer`` and
    ``_rows`` (see ``_pg_audit``).
    """

    _DB_ERROR: type[Exception] | tuple[type[Exception], ...] = sqlite3.Error
    _PROVISION_LIST = "group_concat(provision, char(31))"  # one record's provision index rows

    def __init__(self, store: SQLiteStore, masker: Masker) -> None:
        self._store = store
        self._masker = masker
        self.masking = masker.masking
        self._cv = threading.Condition(threading.Lock())
        self._open = _Batch()
        self._busy = False  # a batch is being committed (by the writer thread, or by an append on the fast path)
        self._closed = store.readonly
        self._fork_orphan = False
        self._thread: threading.Thread | None = None
        self.commits = 0  # batches committed by this process (the group-commit ratio is appends/commits)
        self._head: tuple[int, str] | None = None  # (seq, hash) of the last record, as the writer knows it
        self._seen_version: int | None = None  # the writer connection's data_version when it last knew the head
        self._turn_fd: int | None = None  # the writers' turn lock (see ``_append_rows``), opened on the first commit
        self._turn_unavailable = False
        if not store.readonly:
            self._conn = self._open_writer()
            self._thread = threading.Thread(target=self._run, name="facegate-audit-writer", daemon=True)
            self._thread.start()

    def _open_writer(self) -> Any:
        try:
            return self._store.connect()
        except (sqlite3.Error, StoreError) as exc:
            raise StoreError(f"cannot open audit log `{self._store.path}`: {exc}") from exc

    def _close_writer(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        if self._turn_fd is not None:
            os.close(self._turn_fd)
            self._turn_fd = None

    # -- writing -----------------------------------------------------------------------------
    def append(self, record: Mapping[str, Any]) -> AuditReceipt:
        """Mask, chain and durably commit ``record``; return only once it is fsynced.

        Raises ``AuditWriteError`` (one line, naming the file) when the record cannot be
        encoded or written, or the store is closed or read-only: the gate then denies.
        """
        if not isinstance(record, Mapping):
            raise AuditWriteError(f"cannot log record to `{self._store.path}`: an audit record must be a mapping, "
                                  f"not {type(record).__name__}")
        # Masking and encoding run in the writer thread, one batch at a time: many threads each
        # doing that Python work would spend more on handing the GIL around than on the work.
        return self._submit([record])[0]

    def append_later(self, record: Mapping[str, Any], done: Callable[[AuditReceipt | None, str | None], None]) -> None:
        """Queue ``record`` for the writer thread and return at once, never waiting on a lock or the disk.

        ``done(receipt, None)`` -- or ``done(None, why)`` if the record could not be written -- is
        called on the writer thread once the record's batch is durably committed (or failed).  For
        event loops (``facegate serve``): many requests in flight share one commit, and no thread
        waits per request.  The record is masked and encoded on the calling thread (an event loop
        is one thread: no GIL hand-offs to save, and the writer thread then holds the GIL only to
        chain hashes, never for long while the loop waits for it).  Raises ``AuditWriteError`` at
        once if the record cannot be encoded or the log is closed or read-only.
        """
        if not isinstance(record, Mapping):
            raise AuditWriteError(f"cannot log record to `{self._store.path}`: an audit record must be a mapping, "
                                  f"not {type(record).__name__}")
        row = self._prepare(record)  # masked and encoded here: the record may change once this returns
        with self._cv:
            if self._closed:
                raise self._closed_error()
            batch = self._open
            start = len(batch.items)
            batch.items.append(row)
            batch.waiters.append(_Later(batch, start, done))
            if start == 0:
                self._cv.notify()

    def mask(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``record`` as the log would hold it (identifiers pseudonymised, biometric data removed)."""
        return self._masker.mask(record)

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> list[AuditReceipt]:
        """Append several records as consecutive entries of one commit (all or none)."""
        prepared = [self._prepare(record) for record in records]
        return self._submit(prepared) if prepared else []

    def _write_error(self, why: object) -> str:
        return f"cannot write audit log `{self._store.path}`: {why}"

    def _closed_error(self) -> AuditWriteError:
        path = self._store.path
        if self._fork_orphan:
            return AuditWriteError(f"audit log `{path}` was opened before this process forked; "
                                   "open the store in each process")
        return AuditWriteError(f"audit log `{path}` is {'read-only' if self._store.readonly else 'closed'}")

    def _prepare(self, record: Mapping[str, Any]) -> _Row:
        if self._closed:
            raise self._closed_error()
        return self._encode(record)

    def _encode(self, record: Mapping[str, Any]) -> _Row:
        path = self._store.path
        try:
            masked, floats = self._masker.mask_noting_floats(record)
            if masked.get("time") is None:
                masked["time"] = iso(utc_now())
            time, kind, effect, decision_id, provisions = index_fields(masked)
            body = canonical_json(masked) if floats else canonical_json_floatless(masked)
            body.encode("utf-8")  # a lone surrogate must fail this caller, not the whole batch
        except (TypeError, ValueError) as exc:
            raise AuditWriteError(f"cannot log record to `{path}`: {exc}") from exc
        return body, time, kind, effect, decision_id, provisions

    def _submit(self, rows: list[_Row] | list[Mapping[str, Any]]) -> list[AuditReceipt]:
        # Fast path: nothing queued and nothing being committed -- the caller commits its own
        # rows on this thread, saving two thread wake-ups (a fifth of a durable append when
        # appends come one at a time, as from one gate).  Callers arriving meanwhile queue
        # for the writer thread, which commits them as one batch once this commit is done.
        waiter = None
        with self._cv:
            if self._closed:
                raise self._closed_error()
            if not self._busy and not self._open.items:
                self._busy = True
                batch, start = _Batch(), 0
                batch.items.extend(rows)
            else:
                # A private lock per caller (not an Event per batch): waking a caller then
                # touches nothing shared, which matters with hundreds of threads in one commit.
                waiter = _allocate_lock()
                waiter.acquire()
                batch = self._open
                start = len(batch.items)
                batch.items.extend(rows)
                batch.waiters.append(waiter)
                if start == 0:
                    self._cv.notify()
        if waiter is None:
            try:
                self._commit(batch)
            except Exception as exc:
                batch.error = self._write_error(exc)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()  # the writer may be waiting for this commit to end
        else:
            waiter.acquire()
        if batch.error is not None:
            raise AuditWriteError(batch.error)
        for index in range(start, start + len(rows)):
            if index in batch.failed:
                raise AuditWriteError(batch.failed[index])
        return batch.receipts[start:start + len(rows)]  # type: ignore[return-value]

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._busy or (not self._open.items and not self._closed):
                    self._cv.wait()
                if not self._open.items:
                    return  # closed and drained
                batch, self._open = self._open, _Batch()
                self._busy = True
            try:
                self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - whatever happened, no caller may wait forever
                batch.error = self._write_error(exc)
            finally:
                with self._cv:
                    self._busy = False
                batch.finish()

    def _commit(self, batch: _Batch) -> None:
        """Write one batch as one transaction; on a sequence clash (another process appended)
        re-read the head and try again."""
        prepared: list[_Row] = []
        order: list[int] = []
        for index, item in enumerate(batch.items):
            if isinstance(item, tuple):
                prepared.append(item)
                order.append(index)
                continue
            try:
                prepared.append(self._encode(item))
                order.append(index)
            except AuditWriteError as exc:
                batch.failed[index] = str(exc)
        if not prepared:
            batch.receipts = [None] * len(batch.items)
            return
        try:
            receipts = self._append_rows(prepared)
        except self._DB_ERROR as exc:
            self._head = None
            batch.error = self._write_error(exc)
            return
        self._head = (receipts[-1].seq, receipts[-1].hash)
        self.commits += 1
        batch.receipts = [None] * len(batch.items)
        for index, receipt in zip(order, receipts, strict=True):
            batch.receipts[index] = receipt

    def _append_rows(self, prepared: list[_Row]) -> list[AuditReceipt]:
        """Chain ``prepared`` after the head and commit them; return their receipts.

        Audit writers of one file (a process each) take turns through an advisory lock on a
        file beside it (``flock`` on ``<db>-audit.lock``): one waiting for its turn sleeps in the
        kernel and wakes the moment the other's commit ends, where SQLite's busy handler would
        poll, sleeping 1, 2, 5, 10... ms -- with two busy service workers that polling made the
        tail latency.  Holding the turn, ``PRAGMA data_version`` says whether any other
        connection committed since this writer's last commit; only then is the head read again.

        Then optimistically, after the known head (one statement).  Should the insert still
        clash on ``seq`` (a writer that takes no turn: another program, an older facegate), the
        head is read and the rows written inside one ``BEGIN IMMEDIATE`` transaction, which holds
        the file's write lock throughout -- no other writer can take the next number, so that
        attempt cannot clash (it waits up to the busy timeout).
        """
        with self._turn():
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._seen_version:
                self._head, self._seen_version = None, version
            return self._append_in_turn(prepared)

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        fd = self._turn_fd
        if fd is None and not self._turn_unavailable and fcntl is not None:
            try:
                fd = self._turn_fd = os.open(f"{self._store.path}-audit.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:  # e.g. an in-memory database or a folder we may not create in: SQLite's locking alone
                self._turn_unavailable = True
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _append_in_turn(self, prepared: list[_Row]) -> list[AuditReceipt]:
        conn = self._conn
        if self._head is None:
            self._head = self._read_head(conn)
        rows, receipts = self._chain(prepared, *self._head)
        try:
            self._write(rows)
            return receipts
        except sqlite3.IntegrityError:
            self._head = None  # stale: someone else appended
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows, receipts = self._chain(prepared, *self._read_head(conn))
            for start in range(0, len(rows), MAX_ROWS_PER_STATEMENT):
                conn.execute(*_padded_insert(rows[start:start + MAX_ROWS_PER_STATEMENT]))
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        return receipts

    @staticmethod
    def _read_head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    @staticmethod
    def _chain(items: list[_Row], seq: int, prev: str) -> tuple[list[tuple[Any, ...]], list[AuditReceipt]]:
        rows, receipts = [], []
        for body, time, kind, effect, decision_id, provisions in items:
            seq += 1
            digest = chain_hash(seq, prev, body)
            rows.append((seq, prev, digest, time, kind, effect, decision_id, provisions, body))
            receipts.append(AuditReceipt(seq, digest))
            prev = digest
        return rows, receipts

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` durably, in as few SQLite calls as possible.

        Each call into SQLite releases the GIL, and getting it back while hundreds of threads
        wait for their receipts can take a full switch interval (5 ms).  So a batch of up to
        ``MAX_ROWS_PER_STATEMENT`` rows is *one* autocommit ``INSERT ... VALUES`` statement
        (an implicit transaction, fsynced on commit), padded with NULL rows to a power-of-two
        size so that only a dozen SQL texts exist and all stay prepared; the provision index
        is filled by a trigger inside that same statement.  Larger batches take an explicit
        transaction.
        """
        conn = self._conn
        if len(rows) <= MAX_ROWS_PER_STATEMENT:
            conn.execute(*_padded_insert(rows))
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), MAX_ROWS_PER_STATEMENT):
                conn.execute(*_padded_insert(rows[start:start + MAX_ROWS_PER_STATEMENT]))
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def close(self) -> None:
        """Commit what is pending, stop the writer.  Later appends raise ``AuditWriteError``."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            self._close_writer()

    def forked(self) -> None:
        """Called in a child process after ``fork()`` (see ``SQLiteStore._forked``)."""
        self._closed = self._fork_orphan = True
        self._thread = None  # the parent's writer thread does not exist in this process
        self._open = _Batch()  # the parent's waiting callers do not exist here either

    def pseudonym(self, identifier: Any) -> str:
        """The masked form of ``identifier``, to find a person's records (``"***"`` if redacting)."""
        try:
            return self._masker.pseudonym(identifier)
        except ValueError as exc:
            raise StoreError(f"store `{self._store.path}`: {exc}") from exc

    # -- reading -----------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        if self._store.closed:
            raise StoreError(f"store `{self._store.path}` is closed")
        try:
            conn = self._store.connect()
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read audit log `{self._store.path}`: {exc}") from exc
        return conn

    def head(self) -> AuditReceipt | None:
        row = next(self._rows("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", []), None)
        return None if row is None else AuditReceipt(int(row[0]), str(row[1]))

    def _rows(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        """Run a read-only query on a connection of its own; yield its rows."""
        conn = self._reader()
        try:
            yield from conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read audit log `{self._store.path}`: {exc}") from exc
        finally:
            conn.close()

    def _select(
        self,
        columns: str,
        since: Timestamp | None,
        until: Timestamp | None,
        provision: str | None,
        effect: str | None,
        kind: str | None,
        decision_id: str | None,
        limit: int | None,
        newest_first: bool,
    ) -> Iterator[tuple[Any, ...]]:
        where, params = [], []
        try:
            if since is not None:
                where.append("time >= ?")
                params.append(iso(since))
            if until is not None:
                where.append("time < ?")
                params.append(iso(until))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"bad time filter: {exc}") from exc
        for column, value in (("effect", effect), ("kind", kind), ("decision_id", decision_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if provision is not None:
            where.append("seq IN (SELECT seq FROM audit_provision WHERE provision = ?)")
            params.append(provision)
        sql = f"SELECT {columns} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        yield from self._rows(sql, params)

    def query(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        provision: str | None = None,
        effect: str | None = None,
        kind: str | None = None,
        *,
        decision_id: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Yield ``{"seq", "prev", "hash", "record"}`` in log order; ``since`` ≤ time < ``until``."""
        rows = self._select("seq, prev, hash, body", since, until, provision, effect, kind,
                            decision_id, limit, newest_first)
        for seq, prev, digest, body in rows:
            yield {"seq": seq, "prev": prev, "hash": digest, "record": json.loads(body)}

    def export_jsonl(self, fp: IO[str], **filters: Any) -> int:
        """Write one canonical line per record: ``{"hash","prev","record","seq"}``; return the count.

        Each line verifies on its own: drop ``hash``, canonicalise, sha256 -- see ``verify_lines``.
        """
        count = 0
        rows = self._select("seq, prev, hash, body", filters.pop("since", None), filters.pop("until", None),
                            filters.pop("provision", None), filters.pop("effect", None),
                            filters.pop("kind", None), filters.pop("decision_id", None),
                            filters.pop("limit", None), filters.pop("newest_first", False))
        if filters:
            raise TypeError(f"unknown export filter `{next(iter(filters))}`")
        for seq, prev, digest, body in rows:
            fp.write('{"hash":"' + digest + '","prev":"' + prev + '","record":' + body + ',"seq":' + str(seq) + "}\n")
            count += 1
        return count

    def verify(self, anchor: AuditReceipt | None = None) -> VerifyReport:
        """Recompute every hash and link, and re-derive the index columns from each record.

        Detects edited, removed (at the start or in the middle) and reordered records and
        index rows altered to hide a record from filters.  Removing records at the *end* is
        only detectable against an ``anchor`` -- a receipt or ``head()`` kept elsewhere.
        """
        columns = ("seq, prev, hash, body, time, kind, effect, decision_id, provisions, "
                   f"(SELECT {self._PROVISION_LIST} FROM audit_provision p WHERE p.seq = audit_log.seq)")
        rows = self._select(columns, None, None, None, None, None, None, None, False)
        checker = ChainChecker(anchor=anchor)
        for seq, prev, digest, body, time, kind, effect, decision_id, provisions, indexed in rows:
            checker.check(int(seq), str(prev), str(digest), str(body))
            try:
                derived = index_fields(json.loads(body))
                stored = (time, kind, effect, decision_id, provisions)
            except RecursionError:
                checker.problem(f"seq {seq}: record is nested too deeply to read (forged)")
                continue
            except (ValueError, KeyError, TypeError, AttributeError):
                checker.problem(f"seq {seq}: record is not a JSON object with a valid `time`")
                continue
            in_table = tuple(sorted(indexed.split("\x1f"))) if indexed else ()
            if derived != stored or in_table != (tuple(json.loads(provisions)) if provisions else ()):
                checker.problem(f"seq {seq}: index columns disagree with the record (altered to hide it from filters)")
        return checker.report()
