"""facegate's evidence and state: the decision log, the consent registry, the template gallery.

``SQLiteStore(path)`` is the embedded default (one SQLite file, WAL, ``secure_delete``); the
gate only relies on the protocols ``Store``, ``AuditLog``, ``ConsentRegistry`` and ``Gallery``,
so another backend (PostgreSQL) can replace it.  See docs/evidence.md.
"""

from __future__ import annotations

from ._audit import verify_lines
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
    "PurgeSchedule",
    "SQLiteStore",
    "Store",
    "StoreError",
    "VerifyReport",
    "verify_lines",
]
