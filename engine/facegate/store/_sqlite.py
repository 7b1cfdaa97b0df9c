"""``SQLiteStore``: the embedded default store, one SQLite file in WAL mode.

Every connection runs with ``synchronous=FULL`` (each commit fsyncs the WAL before it returns),
``secure_delete=ON`` (deleted rows are overwritten with zeros) and a busy timeout.  Three kinds
of connection share the file:

* the audit writer's own connection, used only by its thread (see ``_audit``);
* one "main" connection for the consent registry and the gallery, behind a re-entrant lock;
* a short-lived connection per audit query or verification, so a long export blocks nobody.

``scrub()`` checkpoints the WAL and truncates it to zero bytes; every erasure calls it, so an
erased template is in neither the database file nor the ``-wal`` file.
"""

from __future__ import annotations

import hmac
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, Self

from ._audit import SQLiteAuditLog
from ._canonical import iso, utc_now
from ._consent import SQLiteConsentRegistry
from ._errors import StoreError
from ._gallery import SQLiteGallery
from ._interface import LOCATIONS, Timestamp
from ._masking import Masker, Masking
from ._matrix import GalleryChange
from ._walwatch import CommitWatch

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    time TEXT NOT NULL,
    kind TEXT,
    effect TEXT,
    decision_id TEXT,
    provisions TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);

CREATE TABLE IF NOT EXISTS audit_provision (
    provision TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (provision, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_provision_seq ON audit_provision (seq);
CREATE TRIGGER IF NOT EXISTS audit_log_provisions AFTER INSERT ON audit_log WHEN NEW.provisions IS NOT NULL
BEGIN INSERT INTO audit_provision (provision, seq) SELECT value, NEW.seq FROM json_each(NEW.provisions); END;

CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'facegate audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'facegate audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_provision_no_update BEFORE UPDATE ON audit_provision
BEGIN SELECT RAISE(ABORT, 'facegate audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_provision_no_delete BEFORE DELETE ON audit_provision
BEGIN SELECT RAISE(ABORT, 'facegate audit log is append-only'); END;

CREATE TABLE IF NOT EXISTS consent (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    type TEXT NOT NULL,
    given_by TEXT NOT NULL,
    purposes TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    expires_at TEXT,
    withdrawn_at TEXT
);
CREATE INDEX IF NOT EXISTS consent_subject ON consent (subject_id);

CREATE TABLE IF NOT EXISTS template (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    purpose TEXT NOT NULL,
    consent_id TEXT,
    location TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decision_id TEXT
);
CREATE INDEX IF NOT EXISTS template_subject ON template (subject_id);
CREATE INDEX IF NOT EXISTS template_consent ON template (consent_id);
CREATE INDEX IF NOT EXISTS template_model ON template (model_id);
CREATE INDEX IF NOT EXISTS template_expires ON template (expires_at);
"""

_KEY_CHECK = b"facegate mask key check v1"
_FORKED = " (opened before this process forked: open the store in each process)"
_OPEN_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()
_INHERITED: list[Any] = []  # connections a forked child inherited: kept, never closed


def _after_fork_in_child() -> None:
    for store in list(_OPEN_STORES):
        if not store.closed:
            store._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StoreLifecycle:
    """What every store class shares: ``closed``, use as a context manager, and its repr."""

    _closed: bool
    readonly: bool
    path: Any
    close: Callable[[], None]  # each store's own

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else "open")
        return f"<{type(self).__name__} {self.path!r} {state}>"


class MetaStore(Protocol):
    """What ``choose_mask_key`` needs of a store: its name, mode and ``meta`` table."""

    path: str
    readonly: bool

    def _meta(self, key: str) -> str | None: ...

    def _set_meta(self, key: str, value: str) -> None: ...


def choose_mask_key(store: MetaStore, given: bytes | None) -> bytes | None:
    """The HMAC key for pseudonyms; ``None`` for a read-only look at a store whose key is
    kept elsewhere (it can show, verify and export, but not compute pseudonyms)."""
    stored, check = store._meta("mask_key"), store._meta("mask_key_check")
    if given is None:
        if stored is not None:
            return bytes.fromhex(stored)
        if check is not None:
            if store.readonly:
                return None
            raise StoreError(f"store `{store.path}` was created with an external mask key; pass `mask_key`")
        key = secrets.token_bytes(32)
        if not store.readonly:
            store._set_meta("mask_key", key.hex())
        return key
    if len(given) < 16:
        raise StoreError("`mask_key` must be at least 16 bytes")
    fingerprint = hmac.new(given, _KEY_CHECK, "sha256").hexdigest()
    if stored is not None:
        raise StoreError(f"store `{store.path}` keeps its own mask key; do not pass `mask_key`")
    if check is None and not store.readonly:
        store._set_meta("mask_key_check", fingerprint)
    elif check is not None and not hmac.compare_digest(check, fingerprint):
        raise StoreError(f"`mask_key` is not the key store `{store.path}` was created with")
    return given


class SQLiteStore(StoreLifecycle):
    """The default store: audit log, consent registry and gallery in one SQLite file.

    ``masking`` configures what the audit log masks (default ``Masking()``); ``mask_key`` is
    the HMAC secret for masked identifiers -- by default one is generated and kept in the file,
    pass your own (e.g. from a KMS) to keep it out; ``storage_locations`` restricts the
    locations a template may be stamped with (``None`` allows all four); ``readonly`` opens an
    existing file for ``show``/``verify``/``export`` only.  Thread-safe; a context manager.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        masking: Masking | None = None,
        mask_key: bytes | None = None,
        storage_locations: Collection[str] | None = None,
        busy_timeout: float = 5.0,
        readonly: bool = False,
        log_store_events: bool = True,
    ) -> None:
        self.path = str(Path(path))
        self.readonly = readonly
        self.busy_timeout = busy_timeout
        self.log_store_events = log_store_events and not readonly
        if storage_locations is not None:
            unknown = sorted(set(storage_locations) - set(LOCATIONS))
            if unknown:
                raise StoreError(f"unknown storage location `{unknown[0]}` (expected one of {', '.join(LOCATIONS)})")
        self.storage_locations = frozenset(storage_locations or LOCATIONS)
        self._lock = threading.RLock()
        self._closed = False
        self._fork_orphan = False
        self._scrub_pending = False
        #: Whether anything committed to the file since a stamp (the gallery asks it before reading its generation).
        self.commit_watch = CommitWatch(self.path)
        if readonly and not os.path.exists(self.path):
            raise StoreError(f"cannot open store `{self.path}`: no such file")
        if sqlite3.sqlite_version_info < (3, 35):  # RETURNING, JSON1 built in
            raise StoreError(f"the store needs SQLite 3.35 or later, this Python has {sqlite3.sqlite_version}")
        try:
            self._conn = self.connect()
            if not readonly:
                self._conn.execute("SELECT json_valid('[]')")  # the provision trigger needs JSON1
            try:
                if not readonly:
                    # Creation is one write transaction: processes opening a new file at the same
                    # moment queue here, and each after the first finds the schema and key made.
                    self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA)
                version = self._meta("schema_version")
                if version is None and not readonly:
                    self._set_meta("schema_version", str(SCHEMA_VERSION))
                elif version is not None and int(version) != SCHEMA_VERSION:
                    raise StoreError(f"store `{self.path}` has schema version {version}, expected {SCHEMA_VERSION}")
                key = self._mask_key(mask_key)
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self._close_quietly()
            raise StoreError(f"cannot open store `{self.path}`: {exc}") from exc
        except StoreError:
            self._close_quietly()
            raise
        self.audit = SQLiteAuditLog(self, Masker(masking or Masking(), key))
        self.consent = SQLiteConsentRegistry(self)
        self.gallery = SQLiteGallery(self)
        _OPEN_STORES.add(self)

    LEAST = "min"  # SQL: the smallest of several values (the gallery's validity)

    # -- connections -------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """A new connection with the store's pragmas (autocommit; transactions are explicit)."""
        if self.readonly:
            uri = Path(self.path).absolute().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
        else:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)
            mode = self._wal(conn)
            if str(mode).lower() != "wal":
                conn.close()
                raise StoreError(f"store `{self.path}` cannot use WAL mode (got `{mode}`)")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA secure_delete = ON")
        return conn

    def _wal(self, conn: sqlite3.Connection) -> str:
        """Switch to WAL.  On a file another process is creating at this moment SQLite answers
        "database is locked" at once, without its busy handler: retry until ``busy_timeout``."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.005)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` on the main connection, under the store lock."""
        self._main()  # fail before taking a lock a forked child may have inherited held
        with self._lock:
            conn = self._main()
            if self.readonly:
                raise StoreError(f"store `{self.path}` is open read-only")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write store `{self.path}`: {exc}") from exc
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot write store `{self.path}`: {exc}") from exc
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The main connection for a short read, under the store lock."""
        self._main()
        with self._lock:
            conn = self._main()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read store `{self.path}`: {exc}") from exc

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own, in one read transaction (a consistent view), closed after."""
        try:
            conn = self.connect()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read store `{self.path}`: {exc}") from exc
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read store `{self.path}`: {exc}") from exc
        finally:
            conn.close()

    def _main(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store `{self.path}` is closed" + (_FORKED if self._fork_orphan else ""))
        return self._conn

    @staticmethod
    def bump_gallery_generation(conn: sqlite3.Connection, change: GalleryChange | None = None) -> int:
        """Mark the gallery changed, in the caller's transaction; return the generation before.
        (``change``, what changed, is not kept here: another process's cache reloads.)"""
        row = conn.execute(
            "INSERT INTO meta (key, value) VALUES ('gallery_generation', '1') ON CONFLICT (key) "
            "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) RETURNING value"
        ).fetchall()[0]
        return int(row[0]) - 1

    # -- meta and the masking key ------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        try:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:
            if self.readonly:
                raise StoreError(f"`{self.path}` is not a facegate store") from None
            raise
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _mask_key(self, given: bytes | None) -> bytes | None:
        return choose_mask_key(self, given)

    # -- erasure hygiene and lifetime -------------------------------------------------------
    def scrub(self) -> bool:
        """Checkpoint the WAL into the database and truncate it; ``False`` if readers blocked it.

        A blocked scrub is retried at the next erasure and at ``close()``.
        """
        if self.readonly:
            return True
        with self._lock:
            try:
                busy, _, _ = self._main().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot checkpoint store `{self.path}`: {exc}") from exc
            self._scrub_pending = busy != 0
            return not self._scrub_pending

    def withdraw_consent(self, ref: str, at: Timestamp | None = None) -> tuple[list[str], int]:
        """Withdraw consent (record id or subject id) and erase the templates enrolled under it.

        Returns the withdrawn record ids and the number of templates erased.  A withdrawal
        dated in the future is recorded, and its templates are left for ``purge_expired``.
        """
        ids = self.consent.withdraw(ref, at)
        if at is not None and iso(at) > iso(utc_now()):
            return ids, 0
        return ids, sum(self.gallery.erase_by_consent(cid) for cid in ids)

    def close(self) -> None:
        """Drain and stop the audit writer, scrub the WAL, close every connection.  Idempotent.

        A failed closing checkpoint (e.g. a full disk) is harmless -- the WAL is durable and
        is checkpointed at the next open -- and is ignored, unless an erasure is still waiting
        for its scrub: then ``StoreError`` says so, after everything is closed.
        """
        if self._closed:
            return
        self.commit_watch.close()  # before the connections that keep its `-shm` file in place
        self.gallery.stop_schedules()
        self.audit.close()
        with self._lock:
            if self._closed:
                return
            erasure_waiting = self._scrub_pending
            try:
                if not self.readonly:
                    self.scrub()
            except StoreError:
                if erasure_waiting:
                    raise
            finally:
                self._closed = True
                self._close_quietly()

    def _close_quietly(self) -> None:
        self.commit_watch.close()
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _forked(self) -> None:
        """In a child process after ``fork()``: this store's writer thread does not exist here and
        its SQLite connections must not be used, nor closed (closing could checkpoint and delete
        the parent's WAL).  Make every call fail closed instead of hanging."""
        self._closed = self._fork_orphan = True
        self.commit_watch.close()  # the parent's connections keep the `-shm` file; this process may outlive them
        self.audit.forked()
        _INHERITED.append((self._conn, self.audit))  # keep them referenced: never closed here
