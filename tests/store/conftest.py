from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facegate.store import open_store

BACKENDS = ("sqlite", "postgresql")
SKIP_POSTGRES = "FACEGATE_SKIP_POSTGRES"  # =1: skip the PostgreSQL runs on purpose (never implicitly)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL 15 server for the whole session, on a loopback port; stopped at the end.

    If it cannot start, every test that needs it fails (loudly) -- unless FACEGATE_SKIP_POSTGRES=1.
    """
    if os.environ.get(SKIP_POSTGRES) == "1":
        pytest.skip(f"{SKIP_POSTGRES}=1: PostgreSQL runs skipped on request")
    from pgserver import PostgresServer, ServerUnavailable

    try:
        server = PostgresServer()
    except (ServerUnavailable, OSError, KeyError) as exc:
        pytest.fail(f"the PostgreSQL test server did not start: {exc}\n(set {SKIP_POSTGRES}=1 to skip these tests on purpose)",
                    pytrace=False)
    try:
        from facegate.store._postgres import migrate

        migrate(server.create_database("facegate_template"))
        yield server
    finally:
        server.destroy()


class Backend:
    """Fresh stores of one kind: ``target()`` is a new, empty place (file path or database URL)."""

    def __init__(self, name: str, tmp_path: Path, server: Any = None) -> None:
        self.name, self._tmp, self._server = name, tmp_path, server
        self._made: list[str] = []

    def target(self) -> str:
        n = len(self._made)
        if self.name == "sqlite":
            where = str(self._tmp / f"store-{n}.db")
        else:
            import psycopg

            db = f"t_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(self._server.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}" TEMPLATE facegate_template STRATEGY FILE_COPY')
            where = self._server.url(db)
        self._made.append(where)
        return where

    def open(self, target: str | None = None, **options: Any) -> Any:
        return open_store(target or self.target(), **options)

    def raw(self, target: str) -> Any:
        """A plain DB-API connection to ``target`` (autocommit), as an intruder with access would have."""
        if self.name == "sqlite":
            return sqlite3.connect(target, isolation_level=None)
        import psycopg

        return psycopg.connect(target, autocommit=True)

    @staticmethod
    def where(store: Any) -> str:
        """The target a store was opened on (file path or full URL)."""
        return getattr(store, "url", None) or store.path

    def db_error(self) -> type[Exception]:
        """The driver's "operational" error class (what a failing disk or server raises)."""
        if self.name == "sqlite":
            return sqlite3.OperationalError
        import psycopg

        return psycopg.OperationalError

    def stored_bytes(self, store: Any) -> bytes:
        """Every byte the backend keeps on disk for ``store`` (after a checkpoint)."""
        if self.name == "sqlite":
            path = Path(store.path)
            return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
        import psycopg

        with psycopg.connect(self.where(store), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        data = self._server.data
        return b"".join(p.read_bytes() for sub in ("base", "global", "pg_wal") for p in (data / sub).rglob("*") if p.is_file())

    # No per-test cleanup: dropping a database costs a checkpoint (~1 s); the server and all
    # its databases are removed at the end of the session.


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    made = Backend(request.param, tmp_path, server)
    yield made


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:
    with backend.open() as s:
        yield s


@pytest.fixture
def unit() -> Callable[..., np.ndarray]:
    """L2-normalised float32 vectors, as the gate hands them to the gallery."""
    rng = np.random.default_rng(20240601)

    def make(dim: int = 128) -> np.ndarray:
        v = rng.standard_normal(dim).astype(np.float32)
        return v / np.linalg.norm(v)

    return make


def decision(n: int = 0, **over: Any) -> dict[str, Any]:
    """A decision record shaped like the gate's."""
    record: dict[str, Any] = {
        "kind": "decision",
        "decision_id": f"dec-{n}",
        "time": f"2025-06-01T08:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "policy": {"id": "cn-cac-2023-draft", "version": "1.0.0", "revision": "sha256:" + "ab" * 32},
        "request": {
            "operation": "identify",
            "purpose": "access_control",
            "actor": {"id": "hotel-42", "role": "handler", "sector": "hotel"},
            "subject": {"id": f"guest-{n}", "age": 30},
            "storage": {"raw_image": "discard", "location": "on_device", "retention_days": 30},
        },
        "effect": "permit" if n % 2 else "deny",
        "determining": [{"rule": "r-consent", "provision": "CN23-05", "article": "5"}],
        "obligations": [],
        "errors": [],
    }
    record.update(over)
    return record


@pytest.fixture
def make_decision() -> Callable[..., dict[str, Any]]:
    return decision


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file unwritable even for root (``chattr +i``), or skip where that is impossible."""
    undo: list[Callable[[], None]] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o444)
            undo.append(lambda: path.chmod(0o644))
            return
        if shutil.which("chattr") is None:
            pytest.skip("no `chattr` to make a file immutable for root")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make `{path}` immutable here: {done.stderr.decode().strip()}")
        undo.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=False))

    yield make
    for step in reversed(undo):
        step()
