"""The gallery's in-memory matrices: one per model, kept in step with the file.

A matrix is loaded from the file once (for 100,000 128-D templates, well under a second) and
then follows this process's own changes in place -- an enrolment appends rows into spare
capacity, an erasure compacts, a consent withdrawal lowers the rows' validity -- so a gate
that enrols and identifies in turn never reloads.  Every change to the gallery, by any process,
bumps a generation counter in the file in the same transaction; a change is applied here only
if the cache was at the generation just before it, otherwise the cache is dropped and the next
query reloads.  That is what makes a change made by another process visible.

Queries work on a ``Snapshot``: arrays and lists that later changes never modify in ways the
snapshot can see (appends write past its end, erasures build new arrays), so identify needs the
lock only to take one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np

#: One template as the cache holds it: id, subject, consent id, float32 bytes, valid until (µs).
Row = tuple[str, str, str | None, bytes, int]
#: What one gallery generation changed: ("add", template ids, None), ("remove", template ids,
#: None) or ("restrict", consent ids, the ISO time they ended) -- for other processes' caches.
GalleryChange = tuple[str, list[str], str | None]
NEVER = np.iinfo(np.int64).max


class Snapshot(NamedTuple):
    ids: list[str]
    subjects: list[str]
    raw: np.ndarray  # (n, d) float32, as enrolled
    unit: np.ndarray  # (n, d) float32, rows L2-normalised
    sqnorm: np.ndarray  # (n,) float32, squared norms of ``raw``
    valid_until: np.ndarray  # (n,) int64 microseconds since the epoch
    first_invalid: int  # the smallest ``valid_until``


class ModelMatrix:
    """One model's templates, with room to grow."""

    raw: np.ndarray
    unit: np.ndarray
    sqnorm: np.ndarray
    valid_until: np.ndarray

    def __init__(self, dim: int, rows: list[Row]) -> None:
        self.dim = dim
        self.n = 0
        self.ids: list[str] = []
        self.subjects: list[str] = []
        self.consents: list[str | None] = []
        self._allocate(max(64, len(rows) + len(rows) // 8))  # room for enrolments after a (re)load
        self.append(rows)

    def _allocate(self, capacity: int) -> None:
        n, old = self.n, getattr(self, "raw", None)  # None on the first call, from __init__
        raw = np.empty((capacity, self.dim), np.float32)
        unit = np.empty((capacity, self.dim), np.float32)
        sqnorm = np.empty(capacity, np.float32)
        valid = np.empty(capacity, np.int64)
        if old is not None and n:
            raw[:n], unit[:n], sqnorm[:n], valid[:n] = self.raw[:n], self.unit[:n], self.sqnorm[:n], self.valid_until[:n]
        self.raw, self.unit, self.sqnorm, self.valid_until = raw, unit, sqnorm, valid

    def append(self, rows: list[Row]) -> None:
        if not rows:
            return
        n, k = self.n, len(rows)
        if n + k > self.raw.shape[0]:
            self._allocate(max(2 * self.raw.shape[0], n + k))
        block = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(k, self.dim)
        norms = np.linalg.norm(block, axis=1)
        self.raw[n:n + k] = block
        self.unit[n:n + k] = block / norms[:, None]
        self.sqnorm[n:n + k] = norms * norms
        self.valid_until[n:n + k] = [r[4] for r in rows]
        self.ids.extend(r[0] for r in rows)
        self.subjects.extend(r[1] for r in rows)
        self.consents.extend(r[2] for r in rows)
        self.n = n + k  # last: a snapshot taken meanwhile never sees half a row

    def remove(self, template_ids: set[str]) -> None:
        keep = np.fromiter((t not in template_ids for t in self.ids), dtype=bool, count=self.n)
        if keep.all():
            return
        n = int(keep.sum())
        raw, unit = np.empty((max(64, n), self.dim), np.float32), np.empty((max(64, n), self.dim), np.float32)
        sqnorm, valid = np.empty(max(64, n), np.float32), np.empty(max(64, n), np.int64)
        raw[:n], unit[:n] = self.raw[: self.n][keep], self.unit[: self.n][keep]
        sqnorm[:n], valid[:n] = self.sqnorm[: self.n][keep], self.valid_until[: self.n][keep]
        self.raw, self.unit, self.sqnorm, self.valid_until = raw, unit, sqnorm, valid
        self.ids = [t for t, k in zip(self.ids, keep) if k]
        self.subjects = [s for s, k in zip(self.subjects, keep) if k]
        self.consents = [c for c, k in zip(self.consents, keep) if k]
        self.n = n

    def restrict(self, consent_ids: set[str], until: int) -> None:
        hit = np.fromiter((c in consent_ids for c in self.consents), dtype=bool, count=self.n)
        if hit.any():
            valid = self.valid_until[: self.n]
            valid[hit] = np.minimum(valid[hit], until)

    def snapshot(self) -> Snapshot:
        n = self.n
        valid = self.valid_until[:n]
        return Snapshot(self.ids, self.subjects, self.raw[:n], self.unit[:n], self.sqnorm[:n], valid,
                        int(valid.min()) if n else NEVER)


class MatrixCache:
    """Per-model matrices, the model list and the subject count, all at one generation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.load_lock = threading.Lock()  # one load at a time; the others wait and reuse it
        self.generation = -1
        self.matrices: dict[str, ModelMatrix] = {}
        self.models: tuple[str, ...] | None = None
        self.subjects: int | None = None

    def sync(self, generation: int) -> None:
        """Call with ``self.lock`` held: drop everything if the file moved on without us."""
        if generation != self.generation:
            self.generation, self.matrices, self.models, self.subjects = generation, {}, None, None

    def get(self, model: str, generation: int, load: Callable[[str], tuple[int, int, list[Row]]]) -> Snapshot | None:
        """The model's snapshot at ``generation`` (read from the file just before), loading if needed."""
        with self.lock:
            self.sync(generation)
            matrix = self.matrices.get(model)
            if matrix is not None:
                return matrix.snapshot()
        with self.load_lock:
            with self.lock:
                matrix = self.matrices.get(model) if self.generation == generation else None
                if matrix is not None:
                    return matrix.snapshot()
            loaded_at, dim, rows = load(model)
            if not rows:
                return None
            matrix = ModelMatrix(dim, rows)
            with self.lock:
                if loaded_at > self.generation:
                    self.sync(loaded_at)
                if loaded_at == self.generation:
                    self.matrices[model] = matrix
            return matrix.snapshot()  # consistent with the file as of ``loaded_at``

    def apply(self, before: int, change: Callable[[MatrixCache], None]) -> None:
        """Apply this process's own change, committed as generation ``before + 1``, if in step."""
        with self.lock:
            if self.generation == before:
                change(self)
                self.generation = before + 1
                self.subjects = None
            else:
                self.sync(-1)

    # the changes ``apply`` is given ------------------------------------------------------------
    def add(self, model: str, rows: list[Row]) -> None:
        matrix = self.matrices.get(model)
        if matrix is not None:
            matrix.append(rows)
        if self.models is not None and model not in self.models:
            self.models = (*self.models, model)

    def remove(self, template_ids: Iterable[str]) -> None:
        erased = set(template_ids)
        for matrix in self.matrices.values():
            matrix.remove(erased)
        self.models = None  # a model may have lost its last template

    def restrict(self, consent_ids: Iterable[str], until: int) -> None:
        ended = set(consent_ids)
        for matrix in self.matrices.values():
            matrix.restrict(ended, until)
