"""Has anything been committed to a SQLite file (WAL mode) since I last looked?  Asked of shared memory.

Why: a query on a service's event loop -- ``PRAGMA data_version`` for the key file, the gallery
generation for ``stored_persons`` -- releases the interpreter lock, and the audit writer thread,
waiting for it, takes it there and then: it commits a handful of records at a time, and the
loop waits to get the lock back.  Two such queries per decide request cost more CPU than the
decision itself (measured: ``benchmarks/service_load.py``).  Reading a few bytes of a memory map
releases nothing.

What: the first 96 bytes of ``<db>-shm`` are the two copies of the WAL-index header
(https://www.sqlite.org/walformat.html, "the WAL-index header"), which every connection of every
process maps and every commit rewrites (its change counter, the last frame, the checksums; a WAL
reset changes the salts).  So: the same bytes as at an earlier look -> no transaction committed
since, and anything read from the database after that earlier look is still current.  Different
bytes -- a commit, a reset, a torn read while a writer updates them -- mean: ask the database.
The answer errs only towards asking.

Safety: the map is opened only while the caller holds an open connection that has read the
database (so the ``-shm`` file exists and no other process will truncate it: SQLite rebuilds it
only when no connection anywhere has it open), and must be closed before that connection is --
one watch per connection that keeps it valid: when the last connection closes SQLite removes the
file, the next connection makes a new one, and a map made earlier would read a header no commit
changes any more (``KeyStore`` keeps one per thread, with that thread's connection).
Where there is no ``-shm`` file (another journal mode, an in-memory database, heap-memory
WAL-index), :meth:`CommitWatch.stamp` answers ``None``: always ask the database.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

#: Two copies of the 48-byte WAL-index header.
HEADER_BYTES = 96


class CommitWatch:
    """The WAL-index header of one database file, mapped read-only on first use."""

    def __init__(self, db_path: str | Path) -> None:
        self._path = f"{db_path}-shm"
        self._map: mmap.mmap | None = None
        self._tried = False

    def stamp(self) -> bytes | None:
        """The header bytes now (equal stamps: nothing committed in between), or ``None``: no watch, ask the database.

        Call it only while holding an open connection to the database that has read from it.
        """
        m = self._map
        if m is None:
            if self._tried:
                return None
            m = self._open()
            if m is None:
                return None
        try:
            return m[:HEADER_BYTES]
        except ValueError:  # closed meanwhile
            return None

    def _open(self) -> mmap.mmap | None:
        self._tried = True
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < HEADER_BYTES:
                return None
            self._map = mmap.mmap(fd, HEADER_BYTES, prot=mmap.PROT_READ) if hasattr(mmap, "PROT_READ") else None
        except (OSError, ValueError):
            self._map = None
        finally:
            os.close(fd)
        return self._map

    def close(self) -> None:
        """Unmap (before the connection that keeps the ``-shm`` file alive is closed); later stamps are ``None``."""
        m, self._map = self._map, None
        self._tried = True
        if m is not None:
            m.close()
