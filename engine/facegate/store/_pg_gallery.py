"""The gallery across nodes: each node's in-memory matrix kept in step by LISTEN/NOTIFY.

Every gallery change (enrolment, erasure, consent withdrawal) bumps ``meta.gallery_generation``
in its transaction and sends ``NOTIFY facegate_gallery, '<generation>'``, which PostgreSQL
delivers to every listening node at commit.  ``GalleryListener`` (one thread and connection
per store) keeps the highest generation heard; identify compares its matrix against that
generation without a database round trip: this node's own changes are applied in place
(``_matrix``), and so are other nodes' -- each change transaction also records what it changed
in ``gallery_change`` (templates added or removed, consents ended), and a node whose matrix is
behind reads the records since its generation and applies them (``_catch_up``: one query, plus
one for the vectors of templates added).  Only if a record is missing (more than
``CHANGES_KEPT`` generations behind) is the matrix dropped and reloaded whole.
``stored_persons`` (``count_subjects``) reads the generation from the database on every call,
so the next decision counts what is committed.

Between a commit on one node and its notification arriving on another there is a short window.
It cannot leak an erased or withdrawn template: every identify that *matches* checks the
matched templates against the database (still there, retention and consent still valid) in
one query, and if any is gone it reloads and searches again.  What the window can cause is a
missed match for a template enrolled elsewhere a moment ago.  While the listener is
disconnected, identify reads the generation from the database instead (as on SQLite).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import psycopg

from ._canonical import iso, utc_now
from ._gallery import _FOREVER, SQLiteGallery, _generation, _micros
from ._interface import Match, Metric
from ._postgres import CHANNEL, connect

if TYPE_CHECKING:
    from ._postgres import PostgresStore


class GalleryListener:
    """A daemon thread LISTENing on ``facegate_gallery``; ``generation`` is the highest heard
    (``None`` while not connected: callers must then ask the database)."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._generation: int | None = None
        self.heard = threading.Condition(self._lock)  # notified on every generation heard
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="facegate-gallery-listener", daemon=True)
        self._thread.start()

    @property
    def generation(self) -> int | None:
        return self._generation

    def _heard(self, generation: int | None) -> None:
        with self.heard:
            if generation is None or self._generation is None or generation > self._generation:
                self._generation = generation
            self.heard.notify_all()

    def wait_for(self, generation: int, timeout: float) -> bool:
        """Block until a generation at least ``generation`` was heard (``False`` on timeout)."""
        with self.heard:
            return self.heard.wait_for(lambda: (self._generation or -1) >= generation, timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._conn = connect(self._store.url, timeout=self._store.timeout)
                with conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Listening first, then reading: no change can fall between the two.
                    self._heard(_generation(conn))
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.1):  # wakes to notice stop()
                            self._heard(int(note.payload))
            except Exception:  # noqa: BLE001 - server gone, network, bad payload: ask the database meanwhile
                self._heard(None)
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class PostgresGallery(SQLiteGallery):
    """``Gallery`` on PostgreSQL.  Use ``PostgresStore.gallery``; see the module docstring."""

    _store: PostgresStore  # type: ignore[assignment]  # runs on PostgresStore's matching API

    def _generation_now(self) -> int:
        listener = self._store.listener
        known = None if listener is None else listener.generation
        if known is None:
            known = self._generation_in_database()
        # A reload may have read a newer generation than the listener has heard yet: keep it.
        generation = max(known, self._cache.generation)
        if 0 <= self._cache.generation < generation:
            self._catch_up()  # if it cannot (a record missing), the cache stays behind: dropped, reloaded
            generation = max(generation, self._cache.generation)
        return generation

    def _catch_up(self) -> None:
        """Bring the matrices from their generation to the database's by applying the recorded
        changes in order -- unless a record is missing, or the cache moved meanwhile (another
        thread caught it up, or this node changed the gallery itself)."""
        start = self._cache.generation
        with self._store.snapshot() as conn:
            generation = _generation(conn)
            changes = conn.execute("SELECT generation, kind, ids, until FROM gallery_change "
                                   "WHERE generation > :start ORDER BY generation", {"start": start}).fetchall()
            if [c[0] for c in changes] != list(range(start + 1, generation + 1)):
                return
            added = [i for c in changes if c[1] == "add" for i in c[2]]
            rows = conn.execute(
                f"SELECT t.id, t.subject_id, t.consent_id, t.model_id, t.vector, {self._valid_until} FROM template t "
                "LEFT JOIN consent c ON c.id = t.consent_id WHERE t.id = ANY(:ids)",
                {"ids": added, "forever": _FOREVER}).fetchall() if added else []
        by_id = {r[0]: (r[3], (r[0], r[1], r[2], r[4], _micros(r[5]))) for r in rows}  # as of ``generation``
        with self._cache.lock:
            if self._cache.generation != start:
                return
            for _, kind, ids, until in changes:
                if kind == "add":  # a template erased by a later change is not in ``by_id``: skipped
                    for model in {by_id[i][0] for i in ids if i in by_id}:
                        self._cache.add(model, [by_id[i][1] for i in ids if i in by_id and by_id[i][0] == model])
                elif kind == "remove":
                    self._cache.remove(ids)
                else:
                    self._cache.restrict(ids, _micros(until))
            self._cache.generation, self._cache.subjects = generation, None

    def count_subjects(self) -> int:
        self._generation_now()  # catch the cache up to what this node heard, so the count does not drop it
        return super().count_subjects()

    def identify(
        self,
        vector: Any,
        *,
        k: int = 5,
        threshold: float,
        metric: Metric = "cosine",
        model_id: str | None = None,
    ) -> list[Match]:
        """As ``SQLiteGallery.identify``; every match is confirmed against the database first."""
        for _ in range(3):
            matches = super().identify(vector, k=k, threshold=threshold, metric=metric, model_id=model_id)
            if not matches:
                return matches
            usable = self._usable([m.template_id for m in matches])
            if len(usable) == len(matches):
                return matches
            with self._cache.lock:
                self._cache.sync(-1)  # stale: a change from another node is not applied here yet
        return [m for m in matches if m.template_id in usable]

    def _usable(self, template_ids: list[str]) -> set[str]:
        """Those of ``template_ids`` still in the database and usable now (retention, consent)."""
        now = iso(utc_now())[:26]
        with self._store.reading() as conn:
            rows = conn.execute(
                f"SELECT t.id, {self._valid_until} FROM template t LEFT JOIN consent c ON c.id = t.consent_id "
                "WHERE t.id = ANY(:ids)", {"ids": template_ids, "forever": _FOREVER}).fetchall()
        return {r[0] for r in rows if r[1] > now}
