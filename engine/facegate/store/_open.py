"""``open_store``: one entry point for both backends -- a file path is SQLite, a URL PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._sqlite import SQLiteStore

URL_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: str | os.PathLike[str]) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def open_store(target: str | os.PathLike[str], *, base: Path | None = None, **options: Any) -> Any:
    """``PostgresStore(target)`` for a ``postgresql://`` URL, else ``SQLiteStore`` on the file
    (relative paths from ``base``).  ``options`` go to the store (masking, mask_key, readonly, ...)."""
    if is_url(target):
        # psycopg is imported only when a URL is used
        from ._postgres import PostgresStore

        return PostgresStore(str(target), **options)
    path = Path(target).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return SQLiteStore(path, **options)
