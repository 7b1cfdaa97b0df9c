"""``PostgresStore``: the evidence store in one PostgreSQL database, shared by many gate nodes.

The same three parts as ``SQLiteStore`` behind the same protocols: the consent registry and the
gallery are the SQLite classes running on PostgreSQL connections (``_Conn`` translates their
``?``/``:name`` placeholders); the audit log's writer is ``_pg_audit``; the gallery's matrix is
kept in step across nodes by ``_pg_gallery``.  Connections come from a ``psycopg_pool`` pool
(consent, gallery, queries), plus one for the audit writer and one that LISTENs.

Schema: versioned (``meta.schema_version``); an empty database is given the current schema on
first open (under an advisory lock, so nodes starting together do it once); an older one is
refused until ``facegate store migrate`` ran, a newer one always.  See docs/evidence.md.
"""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from ._consent import SQLiteConsentRegistry
from ._errors import StoreError
from ._interface import LOCATIONS
from ._masking import Masker, Masking
from ._matrix import GalleryChange
from ._sqlite import SQLiteStore, StoreLifecycle, choose_mask_key

try:
    import psycopg
    from psycopg import conninfo as _conninfo
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - the optional extra is not installed
    raise StoreError("a PostgreSQL store needs psycopg 3 and psycopg_pool: pip install 'facegate[postgres]'") from exc

SCHEMA_VERSION = 3
_LOCK_KEY = 0x66616365  # pg_advisory_lock key for schema changes ("face")
CHANNEL = "facegate_gallery"  # NOTIFY channel: payload is the gallery generation just committed

#: Version -> DDL that brings the schema from version - 1 to version.  Append, never edit.
MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('gallery_generation', '0');

CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

-- One row per writer connection (keyed by its backend pid): a writer's durability commit.
CREATE TABLE audit_flush (writer INTEGER PRIMARY KEY, n BIGINT NOT NULL);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    time TEXT NOT NULL,
    kind TEXT,
    effect TEXT,
    decision_id TEXT,
    provisions TEXT,
    body TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_decision ON audit_log (decision_id);
CREATE TABLE audit_provision (provision TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (provision, seq));
CREATE INDEX audit_provision_seq ON audit_provision (seq);

CREATE FUNCTION facegate_append_only() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'facegate audit log is append-only'; END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION facegate_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION facegate_append_only();
CREATE TRIGGER audit_provision_append_only BEFORE UPDATE OR DELETE ON audit_provision
    FOR EACH ROW EXECUTE FUNCTION facegate_append_only();
CREATE TRIGGER audit_provision_no_truncate BEFORE TRUNCATE ON audit_provision
    FOR EACH STATEMENT EXECUTE FUNCTION facegate_append_only();

CREATE TABLE consent (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    type TEXT NOT NULL,
    given_by TEXT NOT NULL,
    purposes TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    expires_at TEXT,
    withdrawn_at TEXT
);
CREATE INDEX consent_subject ON consent (subject_id);

CREATE TABLE template (
    id TEXT PRIMARY KEY,
    subject_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BYTEA NOT NULL,
    purpose TEXT NOT NULL,
    consent_id TEXT,
    location TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    decision_id TEXT
);
CREATE INDEX template_subject ON template (subject_id);
CREATE INDEX template_consent ON template (consent_id);
CREATE INDEX template_model ON template (model_id);
CREATE INDEX template_expires ON template (expires_at);
""",
    # 2: a batch of audit records chained and inserted by one call, so the chain's lock is held
    # for server-side work only (no client round trip inside it) -- see _pg_audit.
    2: r"""
CREATE FUNCTION facegate_append(
    bodies TEXT[], times TEXT[], kinds TEXT[], effects TEXT[], decision_ids TEXT[], provisions TEXT[],
    provision_names TEXT[], provision_rows INTEGER[],
    OUT head_seq BIGINT, OUT head_hash TEXT, OUT hashes TEXT[]
) LANGUAGE plpgsql AS $$
DECLARE
    n INTEGER := cardinality(bodies);
    prev TEXT;
    prevs TEXT[] := '{}';
BEGIN
    -- The chain's one lock: batches from every node queue here, one total order, no forks.
    SELECT seq, hash INTO head_seq, head_hash FROM audit_head WHERE id = 1 FOR UPDATE;
    prev := head_hash;
    hashes := '{}';
    FOR i IN 1 .. n LOOP
        -- sha256 of the envelope, exactly as _canonical.envelope builds it (see _chain.chain_hash)
        prevs[i] := prev;
        prev := encode(sha256(convert_to(
            '{"prev":"' || prev || '","record":' || bodies[i] || ',"seq":' || (head_seq + i) || '}', 'UTF8')), 'hex');
        hashes[i] := prev;
    END LOOP;
    INSERT INTO audit_log (seq, prev, hash, time, kind, effect, decision_id, provisions, body)
        SELECT head_seq + r, prevs[r], hashes[r], times[r], kinds[r], effects[r], decision_ids[r], provisions[r], bodies[r]
        FROM generate_series(1, n) AS r;
    INSERT INTO audit_provision (provision, seq)
        SELECT p.provision_name, head_seq + p.r FROM unnest(provision_names, provision_rows) AS p(provision_name, r);
    UPDATE audit_head SET seq = head_seq + n, hash = prev WHERE id = 1;
END $$;
""",
    # 3: what each gallery generation changed, so another node's matrix follows it in place
    # instead of reloading (see _pg_gallery); the last CHANGES_KEPT generations are kept.
    3: """
CREATE TABLE gallery_change (
    generation BIGINT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('add', 'remove', 'restrict')),
    ids TEXT[] NOT NULL,  -- template ids (add, remove) or consent ids (restrict)
    until TEXT            -- restrict: the time the consents ended
);
""",
}
CHANGES_KEPT = 1000

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_TRANSLATED: dict[str, str] = {}


def pg_sql(sql: str) -> str:
    """SQLite-style placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``)."""
    done = _TRANSLATED.get(sql)
    if done is None:
        done = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))
        if len(_TRANSLATED) < 4096:
            _TRANSLATED[sql] = done
    return done


class _Conn:
    """A psycopg connection that takes the SQL the SQLite store classes write."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[Any]:
        return self.raw.execute(pg_sql(sql), params)

    def executemany(self, sql: str, rows: Any) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)

    def stream(self, sql: str, params: Any = ()) -> Iterator[tuple[Any, ...]]:
        """Rows one at a time from the server (a verification does not hold the log in memory)."""
        with self.raw.cursor() as cur:
            yield from cur.stream(pg_sql(sql), params)


def redact(url: str) -> str:
    """The URL without its password, for messages and records."""
    try:
        parts = _conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://?"
    host, port, user, db = (parts.get(k) for k in ("host", "port", "user", "dbname"))
    return f"postgresql://{f'{user}@' if user else ''}{host or ''}{f':{port}' if port else ''}/{db or ''}"


def explain_connect_error(url: str, exc: Exception) -> str:
    """A one-line reason for a failed connection: bad URL, refused, wrong credentials, no database."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = redact(url)
    lowered = str(exc).lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return f"cannot open store `{where}`: wrong credentials (the server refused the user name or password)"
    if "does not exist" in lowered and "database" in lowered:
        db = _conninfo.conninfo_to_dict(url).get("dbname")
        return f"cannot open store `{where}`: database `{db}` does not exist on that server (create it first)"
    if "connection refused" in lowered or "could not connect" in lowered or "timeout" in lowered:
        return f"cannot open store `{where}`: no PostgreSQL server answers there ({text})"
    return f"cannot open store `{where}`: {text}"


def connect(url: str, *, timeout: float, autocommit: bool = True) -> psycopg.Connection[Any]:
    """One connection, or ``StoreError`` saying why not."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.Error as exc:
        raise StoreError(explain_connect_error(url, exc)) from None


def check_url(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"`{redact(url)}` is not a PostgreSQL URL (postgresql://user:password@host:port/database)")
    try:
        parts = _conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        why = " ".join(str(exc).split())
        raise StoreError(f"`{url.split('@')[-1]}` is not a valid PostgreSQL URL: {why}") from None
    if not parts.get("dbname"):
        raise StoreError(f"PostgreSQL URL `{redact(url)}` names no database (…/DATABASE at the end)")


def one(cursor: psycopg.Cursor[Any]) -> Any:
    """The one row a statement must return."""
    row = cursor.fetchone()
    if row is None:
        raise StoreError("the store's tables are incomplete (a row facegate keeps is missing)")
    return row


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The database's schema version; 0 for an empty database."""
    if one(conn.execute("SELECT to_regclass('meta')"))[0] is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


def migrate(url: str, *, timeout: float = 5.0) -> tuple[int, int]:
    """Bring the database's schema to ``SCHEMA_VERSION``; return (before, after).  Idempotent."""
    check_url(url)
    with connect(url, timeout=timeout) as conn:
        return _migrate(conn, redact(url))


def _migrate(conn: psycopg.Connection[Any], where: str) -> tuple[int, int]:
    try:
        with _schema_lock(conn), conn.transaction():
            before = schema_version(conn)
            if before > SCHEMA_VERSION:
                raise StoreError(f"store `{where}` has schema version {before}, newer than this facegate's "
                                 f"{SCHEMA_VERSION}: upgrade facegate")
            for version in range(before + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[version])
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),))
    except psycopg.Error as exc:
        raise StoreError(f"cannot migrate store `{where}`: {exc}") from exc
    return before, SCHEMA_VERSION


@contextmanager
def _schema_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Hold the schema lock (session level): a transaction begun inside sees every schema change
    committed before the lock was granted (a transaction already open might not, in its catalog)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        yield
    finally:
        if not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


_OPEN: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_OPEN):
        store._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


class PostgresStore(StoreLifecycle):
    """Audit log, consent registry and gallery in one PostgreSQL database (``postgresql://…``).

    Arguments as ``SQLiteStore``'s, plus ``pool_size`` (connections for consent, gallery and
    queries) and ``timeout`` (seconds to connect, or to wait for a pooled connection, before
    an operation fails).  ``create=False`` refuses an empty database instead of creating the
    schema in it.  Thread-safe; a context manager; open it in each process (not across fork).
    """

    LEAST = "LEAST"

    def __init__(
        self,
        url: str,
        *,
        masking: Masking | None = None,
        mask_key: bytes | None = None,
        storage_locations: Collection[str] | None = None,
        readonly: bool = False,
        log_store_events: bool = True,
        pool_size: int = 8,
        timeout: float = 5.0,
        create: bool = True,
        listen: bool = True,
    ) -> None:
        check_url(url)
        self.url = url
        self.path = redact(url)  # the name every message uses (as ``SQLiteStore.path``)
        self.readonly = readonly
        self.timeout = timeout
        self.log_store_events = log_store_events and not readonly
        if storage_locations is not None:
            unknown = sorted(set(storage_locations) - set(LOCATIONS))
            if unknown:
                raise StoreError(f"unknown storage location `{unknown[0]}` (expected one of {', '.join(LOCATIONS)})")
        self.storage_locations = frozenset(storage_locations or LOCATIONS)
        self._closed = False
        self._fork_orphan = False
        self._scrub_pending = False  # the gallery asks; PostgreSQL has nothing to checkpoint (see scrub)
        self._setup = connect(url, timeout=timeout)
        try:
            encoding = self._setup.info.parameter_status("server_encoding")
            if encoding != "UTF8":  # the chain hashes UTF-8 bytes, on the server too (facegate_append)
                raise StoreError(f"store `{self.path}` is a database with encoding {encoding}; facegate needs UTF8 "
                                 "(CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)")
            version = schema_version(self._setup)
            if version == 0 and create and not readonly:
                _migrate(self._setup, self.path)
            elif version != SCHEMA_VERSION:
                raise StoreError(self._version_problem(version))
            with _schema_lock(self._setup), self._setup.transaction():
                key = self._mask_key(mask_key)
        except psycopg.Error as exc:
            self._setup.close()
            raise StoreError(f"cannot open store `{self.path}`: {exc}") from exc
        except StoreError:
            self._setup.close()
            raise
        self._pool = ConnectionPool(url, min_size=1, max_size=max(1, pool_size), open=False, timeout=timeout,
                                    kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
                                    name="facegate-store")  # a connection that failed is discarded on return
        self._pool.open(wait=False)
        from ._pg_audit import PostgresAuditLog
        from ._pg_gallery import GalleryListener, PostgresGallery

        # The SQLite classes run on this store through its matching transaction/reading/snapshot API.
        self.audit = PostgresAuditLog(self, Masker(masking or Masking(), key))  # type: ignore[arg-type]
        self.consent = SQLiteConsentRegistry(self)  # type: ignore[arg-type]
        self.gallery = PostgresGallery(self)  # type: ignore[arg-type]
        self.listener = GalleryListener(self) if listen else None
        _OPEN.add(self)

    def _version_problem(self, version: int) -> str:
        if version == 0:
            return f"store `{self.path}` is an empty database: run `facegate store migrate {self.path}` first"
        if version < SCHEMA_VERSION:
            return (f"store `{self.path}` has schema version {version}, this facegate needs {SCHEMA_VERSION}: "
                    "run `facegate store migrate` (back up first)")
        return f"store `{self.path}` has schema version {version}, newer than this facegate's {SCHEMA_VERSION}"

    # -- connections -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            forked = " (opened before this process forked: open the store in each process)" if self._fork_orphan else ""
            raise StoreError(f"store `{self.path}` is closed{forked}")

    @contextmanager
    def _pooled(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        self._check_open()
        try:
            with self._pool.connection() as raw:
                yield raw
        except PoolTimeout as exc:
            raise StoreError(f"cannot {what} store `{self.path}`: no connection within {self.timeout:g} s "
                             "(is the server up?)") from exc
        except psycopg.Error as exc:
            raise StoreError(f"cannot {what} store `{self.path}`: {str(exc).strip() or type(exc).__name__}") from exc

    @contextmanager
    def transaction(self) -> Iterator[_Conn]:
        """One transaction on a pooled connection: committed if the block ends normally."""
        if self.readonly:
            raise StoreError(f"store `{self.path}` is open read-only")
        with self._pooled("write") as raw, raw.transaction():
            yield _Conn(raw)

    @contextmanager
    def reading(self) -> Iterator[_Conn]:
        """A pooled connection for a short read (autocommit: each statement sees the latest commits)."""
        with self._pooled("read") as raw:
            yield _Conn(raw)

    @contextmanager
    def snapshot(self) -> Iterator[_Conn]:
        """A pooled connection in one REPEATABLE READ transaction: a consistent view."""
        with self._pooled("read") as raw, raw.transaction():
            raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield _Conn(raw)

    def bump_gallery_generation(self, conn: _Conn, change: GalleryChange | None = None) -> int:
        """Mark the gallery changed, in the caller's transaction, record what changed (for other
        nodes' matrices), and tell every node at commit.  Returns the generation before."""
        new = int(one(conn.raw.execute("UPDATE meta SET value = (value::bigint + 1)::text "
                                       "WHERE key = 'gallery_generation' RETURNING value"))[0])
        if change is not None:  # without it the generation has no record: other nodes reload
            kind, ids, until = change
            conn.raw.execute("INSERT INTO gallery_change (generation, kind, ids, until) VALUES (%s, %s, %b, %s)",
                             (new, kind, list(ids), until))
        conn.raw.execute("DELETE FROM gallery_change WHERE generation <= %s", (new - CHANGES_KEPT,))
        conn.raw.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(new)))
        return new - 1

    # -- meta and the masking key ------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._setup.execute("SELECT value FROM meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._setup.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (key, value))

    def _mask_key(self, given: bytes | None) -> bytes | None:
        return choose_mask_key(self, given)  # the same rules: stored key, or an external one checked by fingerprint

    # -- erasure and lifetime ----------------------------------------------------------------
    def scrub(self) -> bool:
        """Nothing to do: PostgreSQL has no ``secure_delete``.  An erased row is invisible at
        commit and its space is reclaimed by (auto)vacuum, but its bytes may stay in the data
        files and WAL until overwritten -- see the limits in docs/evidence.md."""
        return True

    withdraw_consent = SQLiteStore.withdraw_consent

    def close(self) -> None:
        """Drain and stop the audit writer, stop listening, close the pool.  Idempotent."""
        if self._closed:
            return
        self.gallery.stop_schedules()
        self.audit.close()
        if self.listener is not None:
            self.listener.stop()
        self._closed = True
        self._pool.close()
        self._setup.close()

    def _forked(self) -> None:
        """In a forked child: the parent's connections and threads are not ours -- fail closed."""
        self._closed = self._fork_orphan = True
        self.audit.forked()
