"""facegate's evidence and state: the decision log, the consent registry, the template gallery.

``SQLiteStore(path)`` is the embedded default (one SQLite file, WAL, ``secure_delete``);
``PostgresStore(url)`` keeps the same evidence in one PostgreSQL database shared by many gate
nodes (``pip install 'facegate[postgres]'``); ``open_store`` picks by its argument.  The gate
only relies on the protocols ``Store``, ``AuditLog``, ``ConsentRegistry`` and ``Gallery``.
See docs/evidence.md.
"""

from __future__ import annotations

from ._chain import verify_lines
from ._errors import AuditWriteError, StoreError
from ._gallery import PurgeSchedule
from ._interface import (
    AuditLog,
    AuditReceipt,
    ConsentRegistry,
    Gallery,
    Match,
    Store,
    VerifyReport,
)
from ._masking import DEFAULT_POINTERS, Masking
from ._open import open_store
from ._sqlite import SQLiteStore

__all__ = [
    "DEFAULT_POINTERS",
    "AuditLog",
    "AuditReceipt",
    "AuditWriteError",
    "ConsentRegistry",
    "Gallery",
    "Masking",
    "Match",
    "PostgresStore",
    "PurgeSchedule",
    "SQLiteStore",
    "Store",
    "StoreError",
    "VerifyReport",
    "open_store",
    "verify_lines",
]


def __getattr__(name: str) -> object:
    if name == "PostgresStore":  # imported on first use: psycopg is an optional extra
        from ._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
