"""What the console holds while it runs: settings, users, sessions, the packs, the store.

Packs are loaded from their folders and reloaded when a file of theirs changes (checked by
fingerprint on each request that reads the pack), so a save from the console, or from an editor
on the same disk, is what the next page shows.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._approvals import approvals
from .._cases import Report, run_pack_tests
from ..errors import ConfigError, PolicyError
from ..policy import Policy, load_policy
from ._accounts import Accounts, Throttle
from ._editing import fingerprint, pack_dir
from ._sessions import Sessions


@dataclass
class Settings:
    """``packs``: pack folders; ``users``: the users file; ``store``: the evidence store's SQLite
    file (approvals, change records and the audit browser read and write its chain)."""

    packs: list[Path]
    users: Path
    store: Path
    secure_cookies: bool = True
    max_failures: int = 5
    throttle_window: float = 300.0
    idle_seconds: float = 1800.0


@dataclass
class LoadedPack:
    path: Path
    fingerprint: str
    policy: Policy | None
    problems: list[str]
    report: Report | None = None
    case_error: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.policy.id if self.policy else self.path.name


class ConsoleState:
    def __init__(self, settings: Settings, store: Any | None = None) -> None:
        self.settings = settings
        self.accounts = Accounts(settings.users)
        self.sessions = Sessions(settings.users, idle=settings.idle_seconds)
        self.throttle = Throttle(settings.users, settings.max_failures, settings.throttle_window)
        # one address may be many people behind one NAT: it gets more tries before it is held
        self.client_throttle = Throttle(settings.users, settings.max_failures * 4, settings.throttle_window)
        if store is None:
            from ..store import SQLiteStore

            store = SQLiteStore(settings.store)
            self._owned_store: Any | None = store
        else:
            self._owned_store = None
        self.store = store
        self._packs: dict[Path, LoadedPack] = {}
        self._lock = threading.Lock()
        if not settings.packs:
            raise ConfigError("the console needs at least one pack folder")

    def close(self) -> None:
        if self._owned_store is not None:
            self._owned_store.close()

    # -- packs ---------------------------------------------------------------------------
    def _load(self, path: Path) -> LoadedPack:
        fp = fingerprint(path)
        known = self._packs.get(path)
        if known is not None and known.fingerprint == fp:
            return known
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            loaded = LoadedPack(path, fp, None, [str(p) for p in exc.problems])
        else:
            loaded = LoadedPack(path, fp, policy, [])
            try:
                loaded.report = run_pack_tests(policy)
            except PolicyError as exc:
                loaded.case_error = [str(p) for p in exc.problems]
        self._packs[path] = loaded
        return loaded

    def packs(self) -> list[LoadedPack]:
        with self._lock:
            return [self._load(p) for p in self.settings.packs]

    def pack(self, pack_id: str) -> LoadedPack | None:
        for p in self.packs():
            if p.id == pack_id:
                return p
        return None

    # -- the audit chain -----------------------------------------------------------------
    def record(self, event: str, user: str | None, **fields: Any) -> Any:
        """Append a console event (``kind: console``) to the audit chain; return the receipt."""
        rec = {"kind": "console", "event": event, "user": user,
               "time": _dt.datetime.now(_dt.UTC).isoformat(), **fields}
        return self.store.audit.append(rec)

    def approvals(self, policy: Policy) -> list[Any]:
        return approvals(self.store.audit, policy.id)

    def root_of(self, policy: Policy) -> Path:
        return pack_dir(policy)
