"""Who may do what: API keys with scopes, and the principal every route checks.

A key reads ``fgk_<key id>_<secret>``.  The key id (12 hex digits) is public: it names the key in
listings, logs and audit records.  The secret (32 random bytes) is shown once at creation and
stored only as its SHA-256 digest; a stolen key file lets nobody call the service.  A plain hash
(not a slow password hash) is enough because the secret has 256 bits of entropy: there is nothing
to guess.  A revocation from ``facegate keys revoke`` takes effect on the next request, without a
restart: keys found valid are cached per thread, but every check first looks whether anything was
committed to the file since the cache was filled -- in the WAL-index header SQLite keeps in shared
memory (``store._walwatch``: no query, so the event loop keeps the interpreter lock), or, where
there is none, with ``PRAGMA data_version`` -- and the cache is dropped then.  Any commit counts:
the CLI's, another worker's, this store's own.

The same layer serves the legal teams' console: an authenticator is any callable from a request
to a :class:`Principal` (or ``None`` to let the next one try).  Keys come first; the console adds
a session authenticator whose users carry *roles*, mapped to the same scopes by
:data:`ROLE_SCOPES`.  Routes only ever ask ``principal.allows(scope)``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..store._walwatch import CommitWatch

#: Every scope a key can hold.  ``admin`` reloads packs, ``metrics`` reads /metrics; the rest name their routes.
SCOPES = ("decide", "process", "audit:read", "consent:read", "consent:write", "metrics", "admin")
#: The console's roles (``facegate.console.ROLES``) as API scopes, for a session authenticator that
#: lets console users call ``/v1`` (the console does not today: its sessions open no ``/v1`` route).
#: Editing and approving rules are console actions, not API scopes.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"audit:read", "consent:read"}),
    "editor": frozenset({"audit:read", "consent:read", "decide"}),
    "reviewer": frozenset({"audit:read", "consent:read", "decide"}),
    "admin": frozenset(SCOPES),
}

_KEY = re.compile(r"^fgk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an API key (``kind="key"``) or a console user (``kind="user"``)."""

    kind: str
    id: str
    scopes: frozenset[str]
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str = ""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class Refusal:
    """Why a caller was refused: ``status`` 401 (who are you?) or 403 (not allowed)."""

    status: int
    reason: str  # missing_credentials | malformed_key | unknown_key | revoked_key | missing_scope
    message: str
    principal: Principal | None = None


Authenticator = Callable[[Any], "Principal | Refusal | None"]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class KeyStore:
    """API keys in their own SQLite file (not the audit store: keys are not evidence)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._writes = 0  # this store's own creates/revokes: they do not change its connections' data_version
        try:
            conn = self._conn()
            conn.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (key_id TEXT PRIMARY KEY, digest TEXT NOT NULL, "
                "name TEXT NOT NULL, scopes TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT)"
            )
            conn.commit()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open key file `{self.path}`: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self._local.watch = None  # a watch belongs to the connection it was made under
            conn = sqlite3.connect(self.path, timeout=5.0)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def create(self, name: str, scopes: Iterable[str]) -> tuple[str, str]:
        """Create a key; returns ``(key_id, key)``.  The key itself is never stored or shown again."""
        wanted = sorted(set(scopes))
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown or not wanted:
            raise ConfigError(f"scope `{(unknown or [''])[0]}` is not one of {', '.join(SCOPES)}")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        conn = self._conn()
        with conn:
            conn.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)",
                         (key_id, _digest(secret), name, json.dumps(wanted), _now()))
        self._writes += 1
        return key_id, f"fgk_{key_id}_{secret}"

    def list(self) -> list[dict[str, Any]]:
        rows = self._conn().execute("SELECT key_id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id")
        return [{"key_id": r[0], "name": r[1], "scopes": json.loads(r[2]), "created_at": r[3], "revoked_at": r[4]} for r in rows]

    def revoke(self, key_id: str) -> bool:
        conn = self._conn()
        with conn:
            cur = conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (_now(), key_id))
        self._writes += 1
        return cur.rowcount == 1

    def check(self, key: str) -> Principal | Refusal:
        """The principal a presented key stands for, or why it is refused (never from a stale cache)."""
        m = _KEY.match(key)
        if m is None:
            return Refusal(401, "malformed_key", "the API key is malformed")
        key_id, secret = m.groups()
        try:
            conn = self._conn()
            # The header stamp through this thread's own watch, made once this thread's connection
            # has read the file and living with it: that connection keeps the `-shm` file in place
            # (with every connection closed SQLite removes it, and a watch mapped before would read a
            # header no commit changes).  Before that, and without a watch, SQLite's data_version.
            watch: CommitWatch | None = getattr(self._local, "watch", None)
            stamp: Any = watch.stamp() if watch is not None else None
            if stamp is None:
                stamp = (conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
                if watch is None:
                    self._local.watch = CommitWatch(self.path)
        except sqlite3.Error as exc:  # fail closed: no key store, no access
            return Refusal(503, "key_store_unavailable", f"key store unavailable: {exc}")
        cache: dict[str, tuple[str, Principal]] | None = getattr(self._local, "cache", None)
        if cache is None or self._local.stamp != stamp:
            cache = self._local.cache = {}
            self._local.stamp = stamp
        known = cache.get(key_id)
        if known is not None:
            return known[1] if hmac.compare_digest(known[0], _digest(secret)) else Refusal(401, "unknown_key", "the API key is not known")
        try:
            row = conn.execute("SELECT digest, name, scopes, revoked_at FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        except sqlite3.Error as exc:
            return Refusal(503, "key_store_unavailable", f"key store unavailable: {exc}")
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            return Refusal(401, "unknown_key", "the API key is not known")
        if row[3] is not None:
            return Refusal(401, "revoked_key", f"API key `{key_id}` was revoked at {row[3]}")
        principal = Principal("key", key_id, frozenset(json.loads(row[2])), name=row[1])
        if len(cache) < 4096:  # only valid keys are cached (the digest, never the key): bounded by the file
            cache[key_id] = (row[0], principal)
        return principal

    def close(self) -> None:
        """Close this thread's connection (and, first, the watch its connection keeps valid)."""
        watch = getattr(self._local, "watch", None)
        if watch is not None:
            watch.close()
            self._local.watch = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def presented_key(headers: Any) -> str | None:
    """The key from ``Authorization: Bearer ...`` or ``X-API-Key``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return str(value.strip())
    key = headers.get("x-api-key")
    return str(key).strip() if key else None


def key_authenticator(store: KeyStore) -> Authenticator:
    def authenticate(request: Any) -> Principal | Refusal | None:
        key = presented_key(request.headers)
        return None if key is None else store.check(key)

    return authenticate


def authenticate(request: Any, authenticators: Iterable[Authenticator]) -> Principal | Refusal:
    """Ask each authenticator in turn; the first answer (a principal or a refusal) counts."""
    for auth in authenticators:
        found = auth(request)
        if found is not None:
            return found
    return Refusal(401, "missing_credentials", "an API key is required (Authorization: Bearer fgk_...)")


def authorize(request: Any, authenticators: Iterable[Authenticator], scope: str) -> Principal | Refusal:
    """The caller if it holds ``scope``; otherwise the refusal (401 or 403) to send and audit."""
    found = authenticate(request, authenticators)
    if isinstance(found, Refusal):
        return found
    if not found.allows(scope):
        return Refusal(403, "missing_scope", f"{found.kind} `{found.id}` lacks scope `{scope}`", found)
    return found
