"""Console sessions and CSRF tokens.

A session is a random 256-bit token in a cookie that is ``Secure``, ``HttpOnly`` and
``SameSite=Strict``, scoped to the console's path.  What it stands for (user name, CSRF token,
times) is kept in the users file (``console_session``), under the SHA-256 of the token, not the
token: every worker process of ``facegate serve --workers N`` sees the same sessions, a restart
logs nobody out, and a copy of the file gives no one a session.  Nothing about the user rides in
the cookie.  Sessions end after ``idle`` seconds without a request or ``lifetime`` seconds in all
(wall-clock time, which all processes share); the user's row is read again on every request, so
a disabled user is out at once.

Every state-changing request (every POST) must carry the session's CSRF token -- a form field
``csrf`` or the header ``X-CSRF-Token`` -- compared in constant time.  The login form, which has
no session yet, uses a double-submit token: a random value in a short-lived cookie and the same
value in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._accounts import connect

COOKIE = "facegate_console"
LOGIN_COOKIE = "facegate_console_login"
_TOUCH = 10.0  # a session's last-seen time is written at most this often (seconds)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_session (
    token_sha256 TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS console_session_user ON console_session (user);
"""


@dataclass(frozen=True)
class Session:
    token: str
    user: str
    csrf: str
    created: float
    seen: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """The sessions table of the users file.  Thread- and process-safe: each call opens its own
    short connection (SQLite serialises the writers)."""

    def __init__(self, path: str | Path, idle: float = 1800.0, lifetime: float = 12 * 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.idle = idle
        self.lifetime = lifetime
        self._clock = clock
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def create(self, user: str) -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._connect() as conn:
            conn.execute("DELETE FROM console_session WHERE seen < ? OR created < ?", (now - self.idle, now - self.lifetime))
            conn.execute("INSERT INTO console_session (token_sha256, user, csrf, created, seen) VALUES (?, ?, ?, ?, ?)",
                         (_key(s.token), s.user, s.csrf, s.created, s.seen))
        return s

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 256:
            return None
        now = self._clock()
        key = _key(token)
        with self._connect() as conn:
            row = conn.execute("SELECT user, csrf, created, seen FROM console_session WHERE token_sha256 = ?", (key,)).fetchone()
            if row is None:
                return None
            user, csrf, created, seen = row
            if now - seen > self.idle or now - created > self.lifetime:
                conn.execute("DELETE FROM console_session WHERE token_sha256 = ?", (key,))
                return None
            if now - seen >= _TOUCH:
                conn.execute("UPDATE console_session SET seen = ? WHERE token_sha256 = ?", (now, key))
                seen = now
        return Session(token, user, csrf, created, seen)

    def end(self, token: str | None) -> None:
        if token:
            with self._connect() as conn:
                conn.execute("DELETE FROM console_session WHERE token_sha256 = ?", (_key(token),))

    def end_user(self, user: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM console_session WHERE user = ?", (user,))


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)
