"""Console sessions and CSRF tokens.

A session is a random 256-bit token in a cookie that is ``Secure``, ``HttpOnly`` and
``SameSite=Strict``, scoped to the console's path; the server keeps what it stands for (user
name, CSRF token, times) in memory, so a restart logs everyone out and nothing about the user
rides in the cookie.  Sessions end after ``idle`` seconds without a request or ``lifetime``
seconds in all; the user's row is read again on every request, so a disabled user is out at once.

Every state-changing request (every POST) must carry the session's CSRF token -- a form field
``csrf`` or the header ``X-CSRF-Token`` -- compared in constant time.  The login form, which has
no session yet, uses a double-submit token: a random value in a short-lived cookie and the same
value in the form.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "facegate_console"
LOGIN_COOKIE = "facegate_console_login"


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    created: float
    seen: float
    flash: list[str] = field(default_factory=list)


class Sessions:
    def __init__(self, idle: float = 1800.0, lifetime: float = 12 * 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self._clock = clock
        self._by_token: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            self._by_token[s.token] = s
        return s

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        now = self._clock()
        with self._lock:
            s = self._by_token.get(token)
            if s is None:
                return None
            if now - s.seen > self.idle or now - s.created > self.lifetime:
                del self._by_token[token]
                return None
            s.seen = now
            return s

    def end(self, token: str | None) -> None:
        with self._lock:
            self._by_token.pop(token or "", None)

    def end_user(self, user: str) -> None:
        with self._lock:
            for t in [t for t, s in self._by_token.items() if s.user == user]:
                del self._by_token[t]

    def _expire(self, now: float) -> None:
        for t in [t for t, s in self._by_token.items() if now - s.seen > self.idle or now - s.created > self.lifetime]:
            del self._by_token[t]


def same_token(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing or empty token never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def new_token() -> str:
    return secrets.token_urlsafe(32)
