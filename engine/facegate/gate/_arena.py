"""The shared memory a worker's images cross in: one arena per worker, reused, zeroed after every request.

A request's images are copied into the arena of the worker that serves it, the worker maps them
read-only for that request (and unmaps them after; a mapping the plugin still holds is reported
as kept), and the gate zeroes every byte it wrote before the worker is handed another request or
the outcome is returned.  The arena is a file in ``/dev/shm`` (mode 0600, a random name) only
until the worker has opened it on its first request: then it is unlinked, and lives on as the
gate's mapping and the worker's read-only descriptor.  Reusing it spares each request creating,
faulting in, zeroing and unlinking a fresh file of the images' size, the larger part of what the
isolated gate used to add to the recognizer's time.

What a plugin can see through the arena (its descriptor is in the worker; it can map it itself)
is what it is handed anyway: the current request's images while that request runs, and zeros
between requests.  An arena grows to the largest request its worker has served (rounded up to
``GRAIN``); one larger than ``KEEP`` is dropped after its request instead of kept.
"""

from __future__ import annotations

import mmap
import os
import secrets
from typing import Any

import numpy as np

SHM_DIR = "/dev/shm"
GRAIN = 1 << 20  # arena sizes are whole MiB, so slightly larger images do not make a new one
KEEP = 64 << 20  # an arena larger than this is dropped after its request


class Arena:
    """The gate's side of one worker's shared-memory arena."""

    def __init__(self, size: int) -> None:
        self.size = max(GRAIN, -(-size // GRAIN) * GRAIN)
        self.path = f"{SHM_DIR}/facegate-{os.getpid()}-{secrets.token_hex(8)}"
        self.linked = True  # still a name in /dev/shm: the worker has not opened it yet
        self.used = 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.size)
            self._map: Any = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            os.unlink(self.path)
            raise
        os.close(fd)
        self._bytes: np.ndarray | None = np.frombuffer(self._map, np.uint8)

    def load(self, images: list[np.ndarray]) -> list[list[int]]:
        """Copy ``images`` (as H×W×3) to the start of the arena; return their layout ``[offset, h, w]``."""
        assert self._bytes is not None and self.used == 0, "an arena holds one request at a time"
        layout, offset = [], 0
        for image in images:
            h, w = image.shape[:2]
            layout.append([offset, h, w])
            offset += h * w * 3
        if offset > self.size:
            raise ValueError(f"{offset} bytes of images do not fit an arena of {self.size}")
        self.used = offset  # set first: whatever the copy reached is zeroed by wipe()
        for (start, h, w), image in zip(layout, images):
            target = self._bytes[start : start + h * w * 3].reshape(h, w, 3)
            if image.ndim == 2:
                target[...] = image[:, :, None]
            else:
                target[...] = image[:, :, :3]
        return layout

    def wipe(self) -> None:
        """Zero what the last request wrote."""
        if self._bytes is not None and self.used:
            self._bytes[: self.used] = 0
        self.used = 0

    def unlink(self) -> None:
        """Take the arena's name out of /dev/shm (once the worker has it open)."""
        if self.linked:
            self.linked = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Zero, unmap and unlink (the worker is gone or gets a new arena)."""
        try:
            self.wipe()
        finally:
            self._bytes = None
            if not self._map.closed:
                self._map.close()
            self.unlink()

    @property
    def closed(self) -> bool:
        return bool(self._map.closed)
