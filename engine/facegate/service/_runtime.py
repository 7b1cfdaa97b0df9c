"""The running gate: built from the operator configuration, reloaded keeping the last good one.

The service holds one :class:`Runtime` (gate + the settings of its ``service:`` section).  A
reload (SIGHUP or ``POST /v1/admin/reload``) builds a complete new runtime from the same file
and swaps it in only if everything loaded -- configuration valid, pack loads and compiles (what
``facegate check`` does), plugins allowed, recognizer started.  Otherwise the running one stays
and the error is returned.  Requests already running finish on the runtime they started with;
every decision names the pack revision it was made under.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._compose import load_configured
from .._config import read_config, resolve
from .._plugins import load_registry
from ..errors import ConfigError, FacegateError
from ..gate import Gate
from ..store import Masking, SQLiteStore

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The ``service.limits`` section: every bound the service puts on one caller's input."""

    max_body_bytes: int = 16 * MiB
    max_image_bytes: int = 8 * MiB
    max_pixels: int = 40_000_000
    max_batch: int = 1000
    body_timeout_seconds: float = 15.0
    per_key_concurrency: int = 32

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Limits:
        return cls(**{k: section[k] for k in cls.__dataclass_fields__ if k in section})


@dataclass(frozen=True)
class Settings:
    """The service's own configuration (the ``service:`` section of the operator file)."""

    keys_path: Path
    limits: Limits = field(default_factory=Limits)
    log_json: bool = False


def read_settings(config: Mapping[str, Any], base: Path) -> Settings:
    section = config.get("service", {})
    return Settings(
        keys_path=resolve(base, section.get("keys", "facegate-keys.db")),
        limits=Limits.from_config(section.get("limits", {})),
        log_json=bool(section.get("log", {}).get("json", False)),
    )


class ReceiptingAudit:
    """The store's audit log as the gate sees it: counts records awaiting commit, keeps receipts.

    ``collect()`` gathers, on the calling thread, the receipts of every record the gate appends
    during a call -- the proof returned to the client that its decision is in the log.
    """

    def __init__(self, log: Any) -> None:
        self._log = log
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.pending = 0  # records handed to the log and not yet durably committed
        self.appended = 0  # records handed to the log since start (``commits`` is the log's: the group-commit ratio)

    def append(self, record: Mapping[str, Any]) -> Any:
        with self._count_lock:
            self.pending += 1
            self.appended += 1
        try:
            receipt = self._log.append(record)
        finally:
            with self._count_lock:
                self.pending -= 1
        sink = getattr(self._local, "sink", None)
        if sink is not None:
            sink.append(receipt)
        return receipt

    def append_later(self, record: Mapping[str, Any], done: Any) -> None:
        """The log's ``append_later`` (the gate's ``decide_async`` uses it), counted while pending."""
        with self._count_lock:
            self.pending += 1
            self.appended += 1

        def finished(receipt: Any, error: str | None) -> None:
            with self._count_lock:
                self.pending -= 1
            done(receipt, error)

        try:
            self._log.append_later(record, finished)
        except BaseException:
            with self._count_lock:
                self.pending -= 1
            raise

    @contextlib.contextmanager
    def collect(self) -> Iterator[list[Any]]:
        sink: list[Any] = []
        self._local.sink = sink
        try:
            yield sink
        finally:
            self._local.sink = None

    def __getattr__(self, name: str) -> Any:  # verify, query, export_jsonl, mask, head, ...
        return getattr(self._log, name)


@dataclass
class Runtime:
    """One loaded generation: the gate, its store and audit wrapper, and the service settings."""

    gate: Gate
    store: SQLiteStore
    audit: ReceiptingAudit
    settings: Settings
    config_path: Path
    store_key: tuple[str, tuple[str, ...]]

    @property
    def revision(self) -> str:
        return self.gate.policy.revision

    def packs(self) -> list[dict[str, Any]]:
        """Every loaded pack (one, or each member of a composition) with its revision."""
        members: tuple[Any, ...] = getattr(self.gate.policy, "policies", (self.gate.policy,))
        return [{"id": p.id, "version": p.version, "revision": p.revision, "rules": len(p.rules),
                 "provisions": len(p.pack.provisions), "title": p.pack.meta.get("title")} for p in members]

    def request_schema(self) -> dict[str, Any]:
        """The request contract decide validates with: the pack's, or any member's of a composition."""
        policy: Any = self.gate.policy
        members = getattr(policy, "policies", None)
        if members is None:
            return dict(policy.request_schema)
        return {"description": "a request for any of the composed packs (each validates against its own contract)",
                "anyOf": [m.request_schema for m in members]}


def build(config_path: str | Path, *, reuse_store: Runtime | None = None) -> Runtime:
    """Load everything the service needs from ``config_path``; raise FacegateError if anything fails."""
    path = Path(config_path)
    config, base = read_config(path)
    if "store" not in config:
        raise ConfigError(f"{path}: the service needs a `store` (its audit log, consent registry and gallery)")
    registry = load_registry(config.get("plugins", {}).get("allow", ()))
    policy = load_configured(config, base, functions=registry.functions)  # one pack, or a composition of several
    store_path = resolve(base, config["store"]["path"]).resolve()
    mask = tuple(config["store"].get("mask", ()))
    key = (str(store_path), mask)
    if reuse_store is not None and reuse_store.store_key != key:
        raise ConfigError("the store path or masking changed: that needs a restart, not a reload")
    store = reuse_store.store if reuse_store is not None else (
        SQLiteStore(store_path, masking=Masking(pointers=mask)) if mask else SQLiteStore(store_path))
    audit = reuse_store.audit if reuse_store is not None else ReceiptingAudit(store.audit)
    rec = config["recognizer"]
    try:
        if config.get("approval", {}).get("required"):  # as Gate.from_config: only approved rules may serve
            from .._approvals import require_approved

            require_approved(policy, store.audit)
        gate = Gate(policy, rec["id"], registry=registry, recognizer_config=rec.get("config", {}), store=store, audit=audit,
                    consent_mode=config.get("consent", {}).get("mode", "request-only"), timeout=rec.get("timeout_seconds", 30.0),
                    isolation=rec.get("isolation", "required"), workers=rec.get("workers", 1),  # as Gate.from_config
                    memory_mb=rec.get("limits", {}).get("memory_mb", 4096), cpu_seconds=rec.get("limits", {}).get("cpu_seconds_per_call"))
    except Exception:
        if reuse_store is None:
            store.close()
        raise
    return Runtime(gate, store, audit, read_settings(config, base), path, key)


class Holder:
    """The current runtime, swapped atomically on a successful reload."""

    def __init__(self, config_path: str | Path) -> None:
        self.config_path = Path(config_path)
        self.current = build(self.config_path)
        self.reloads_ok = 0
        self.reloads_failed = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def reload(self) -> tuple[bool, str]:
        """Try to load the configuration again; keep the running runtime if anything fails."""
        with self._lock:
            old = self.current
            try:
                new = build(self.config_path, reuse_store=old)
            except FacegateError as exc:
                self.reloads_failed += 1
                self.last_error = str(exc)
                return False, f"reload refused, still serving revision {old.revision}: {exc}"
            except Exception as exc:  # a plugin or pack failing in an unforeseen way is still refused
                self.reloads_failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                return False, f"reload refused, still serving revision {old.revision}: {self.last_error}"
            self.current = new
            self.reloads_ok += 1
            self.last_error = None
            return True, f"now serving revision {new.revision} (was {old.revision})"

    def close(self) -> None:
        self.current.store.close()
