"""Console accounts: users with one role each, argon2id password hashes, login throttling.

Users live in a small SQLite file of their own (``facegate users add --db FILE``), apart from the
evidence store: an operator can hand the audit log to a regulator without the password hashes.
Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's second recommended
profile); a hash made under older parameters is re-hashed at the next successful login.

Roles are ordered: each includes what the ones before it may do.

=========  =================================================================
viewer     read packs, provisions, REVIEW, the playground, the audit browser
editor     + edit rules, save playground requests as cases
reviewer   + approve a rule or the whole pack (sign-off)
admin      + everything; ``facegate users`` is the only way to manage users
=========  =================================================================

Throttling: after ``max_failures`` failed logins for one user name (four times as many from one
client address, which may be many people behind one NAT) within ``window`` seconds, further
attempts are refused without checking the password until the window has passed.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import ConfigError
from ._roles import ROLES, role_allows

MIN_PASSWORD = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_user (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL
);
"""


_FAILURES = """
CREATE TABLE IF NOT EXISTS console_failure (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS console_failure_key ON console_failure (key, at);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A short connection to the users file (users, sessions, failed logins): one per call, so
    threads and worker processes share the file safely, SQLite serialising the writers."""
    conn = sqlite3.connect(path, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


@dataclass(frozen=True)
class User:
    name: str
    role: str
    disabled: bool
    created: str

    def can(self, needed: str) -> bool:
        return not self.disabled and role_allows(self.role, needed)


class Accounts:
    """The users file.  Thread-safe: each call opens its own short connection."""

    def __init__(self, path: str | Path, *, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(path)
        self._hasher = hasher or PasswordHasher()
        try:
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open users file `{self.path}`: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def add(self, name: str, role: str, password: str) -> User:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(name) > 64:
            raise ConfigError(f"user name `{name}` must be 1-64 letters, digits, `-`, `_` or `.`")
        if role not in ROLES:
            raise ConfigError(f"role `{role}` is not one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
        created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        try:
            with self._connect() as conn:
                conn.execute("INSERT INTO console_user (name, role, hash, created) VALUES (?, ?, ?, ?)",
                             (name, role, self._hasher.hash(password), created))
        except sqlite3.IntegrityError as exc:
            raise ConfigError(f"user `{name}` already exists") from exc
        return User(name, role, False, created)

    def list(self) -> list[User]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, role, disabled, created FROM console_user ORDER BY name").fetchall()
        return [User(n, r, bool(d), c) for n, r, d, c in rows]

    def get(self, name: str) -> User | None:
        with self._connect() as conn:
            row = conn.execute("SELECT name, role, disabled, created FROM console_user WHERE name = ?", (name,)).fetchone()
        return None if row is None else User(row[0], row[1], bool(row[2]), row[3])

    def disable(self, name: str) -> None:
        with self._connect() as conn:
            changed = conn.execute("UPDATE console_user SET disabled = 1 WHERE name = ?", (name,)).rowcount
        if not changed:
            raise ConfigError(f"no user `{name}`")

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, if the name exists, is enabled and the password matches; else ``None``."""
        with self._connect() as conn:
            row = conn.execute("SELECT hash, role, disabled, created FROM console_user WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._hasher.hash(password)  # the same work as a real check: no timing hint that a name exists
            return None
        stored, role, disabled, created = row
        try:
            self._hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if disabled:
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._connect() as conn:
                conn.execute("UPDATE console_user SET hash = ? WHERE name = ?", (self._hasher.hash(password), name))
        return User(name, role, False, created)


class Throttle:
    """Failed logins per key (user name, client address) in a sliding window, kept in the users
    file (``console_failure``), so every worker process counts the same failures."""

    def __init__(self, path: str | Path, max_failures: int = 5, window: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        with self._connect() as conn:
            conn.executescript(_FAILURES)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def blocked(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for all of ``keys`` (0 when allowed now)."""
        now = self._clock()
        wait = 0.0
        with self._connect() as conn:
            for key in keys:
                times = [t for (t,) in conn.execute("SELECT at FROM console_failure WHERE key = ? AND at > ? ORDER BY at",
                                                    (key, now - self.window))]
                if len(times) >= self.max_failures:
                    wait = max(wait, self.window - (now - times[-self.max_failures]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._connect() as conn:
            conn.executemany("INSERT INTO console_failure (key, at) VALUES (?, ?)", [(key, now) for key in keys])
            conn.execute("DELETE FROM console_failure WHERE at <= ?", (now - self.window,))  # bounded by the window

    def succeeded(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM console_failure WHERE key = ?", (key,))
