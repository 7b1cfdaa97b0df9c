"""The template gallery: enrol, 1:N identify, 1:1 verify, erase, purge.

Templates are stored as little-endian float32 blobs, each stamped with subject, model,
purpose, consent record, storage location, enrolment time, retention deadline and the id of
the decision that permitted it.  A template stops matching the instant its retention deadline
passes or its consent is withdrawn or expires, even before it is purged.

Identify works on an in-memory matrix per model (``_matrix``: rows L2-normalised for cosine,
squared norms for euclidean) that follows this process's own changes in place and is reloaded
when another process changed the file.  A query is one single-threaded matrix-vector product,
then only the scores past the threshold are partitioned.

Erasure deletes the rows with ``secure_delete=ON`` (SQLite zeroes the freed bytes), then
checkpoints and truncates the WAL (``SQLiteStore.scrub``): the template's bytes are in neither
file afterwards.  Memory of the process (the dropped cache) is released, not zeroed.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ._canonical import iso, to_utc, utc_now
from ._consent import _COLUMNS as _CONSENT_COLUMNS
from ._consent import _record as _consent_record
from ._consent import in_force
from ._errors import AuditWriteError, StoreError
from ._interface import (
    CONSENT_GIVERS,
    CONSENT_TYPES,
    PURPOSES,
    UNSTATED,
    Match,
    Metric,
    Timestamp,
)
from ._matrix import MatrixCache, Row, Snapshot

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

_FOREVER = "9999-12-31T23:59:59.999999"
# A template is usable until the earliest of its retention deadline and its consent's end.
_VALID_UNTIL = (  # ``{least}``: SQLite's many-argument ``min``, PostgreSQL's ``LEAST``
    "substr({least}(t.expires_at, coalesce(c.withdrawn_at, :forever), coalesce(c.expires_at, :forever)), 1, 26)"
)


def _generation(conn: Any) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'gallery_generation'").fetchone()
    return 0 if row is None else int(row[0])


def _micros(value: str) -> int:
    return int(np.datetime64(value[:26], "us").astype(np.int64))


def _as_vector(vector: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(vector, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not a numeric vector: {exc}") from exc
    if array.ndim != 1 or array.size == 0:
        raise StoreError(f"{what} must be a non-empty 1-D vector, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise StoreError(f"{what} has NaN or infinite values")
    if not float(np.dot(array, array)) > 0.0:
        raise StoreError(f"{what} is the zero vector")
    return array


def stated_consent(subject_id: str, facts: Any, at: str) -> tuple[Any, ...] | None:
    """The consent row recording what a request stated, or ``None`` if it states no consent in force.

    Recorded as stated, nothing inferred: the purposes as listed (possibly none), and
    ``given_by`` as ``unstated`` when the request did not say (``lookup`` then omits it).
    """
    if not isinstance(facts, Mapping) or facts.get("type") not in CONSENT_TYPES or facts.get("withdrawn") is True:
        return None
    given_by = facts.get("given_by", UNSTATED)
    purposes = facts.get("purposes", [])
    if given_by not in (*CONSENT_GIVERS, UNSTATED) or not isinstance(purposes, list) \
            or not all(p in PURPOSES for p in purposes):
        raise StoreError("the request's consent facts are not in the request contract's shape")
    return ("consent-" + uuid.uuid4().hex, subject_id, facts["type"], given_by,
            json.dumps(sorted(set(purposes))), at)


class PurgeSchedule:
    """A daemon thread that calls ``purge_expired()`` now and then every ``every`` seconds."""

    def __init__(self, gallery: SQLiteGallery, every: float) -> None:
        if every <= 0:
            raise StoreError("purge interval must be positive")
        self.every = every
        self.purged = 0
        self.last_error: StoreError | None = None
        self._gallery = gallery
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facegate-gallery-purge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.purged += self._gallery.purge_expired()
                self.last_error = None
            except StoreError as exc:  # a closed or failing store: keep the error, keep trying
                self.last_error = exc
            if self._stop.wait(self.every):
                return

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()


class SQLiteGallery:
    """``Gallery`` over the store's file.  Use ``SQLiteStore.gallery``."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self._valid_until = _VALID_UNTIL.format(least=store.LEAST)
        self._cache = MatrixCache()
        self._schedules: list[PurgeSchedule] = []
        self._known_generation: tuple[bytes, int] | None = None  # (commit stamp, generation read after it)

    # -- enrolment -----------------------------------------------------------------------------
    def enroll(
        self,
        subject_id: str,
        vector: Any,
        *,
        purpose: str,
        consent_id: str | None,
        retention_days: int,
        location: str,
        model_id: str,
        decision_id: str | None = None,
        consent_facts: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a template; return its id (``tpl-<hex>``).

        ``consent_facts`` (with ``consent_id=None``) is the consent the request itself stated
        (``{"type", "given_by", "purposes", "withdrawn"}``, as in request.v1): when it states an
        actual consent (a type other than ``none``, not withdrawn), it is recorded in the
        registry as given at enrolment (source ``request``, see ``stated_consent``) and the
        template rests on that record -- so the subject's withdrawal ends and erases it like any
        other.  A request stating no consent leaves the template on another legal basis.

        Refused (``StoreError``) when: the location is not allowed by the store; the purpose is
        not a contract purpose; ``consent_id`` is given but is not an in-force consent of this
        subject covering this purpose (pass ``None`` explicitly for a decision resting on a
        legal basis other than consent); the retention is not a positive number of days; or the
        vector does not have the dimension of the model's other templates.
        """
        return self.enroll_many([{
            "subject_id": subject_id, "vector": vector, "purpose": purpose, "consent_id": consent_id,
            "retention_days": retention_days, "location": location, "model_id": model_id,
            "decision_id": decision_id, "consent_facts": consent_facts,
        }])[0]

    def enroll_many(self, entries: Iterable[Mapping[str, Any]]) -> list[str]:
        """Enrol several templates in one transaction (all or none), e.g. to import a gallery.

        Each entry holds ``enroll``'s arguments by name; the same checks apply to each.
        """
        now = utc_now()
        enrolled_at = iso(now)
        rows, stated = [], []
        for entry in entries:
            row = self._row(entry, now)
            if row[6] is None and entry.get("consent_facts") is not None:
                consent_row = stated_consent(row[1], entry["consent_facts"], enrolled_at)
                if consent_row is not None:
                    stated.append(consent_row)
                    row = (*row[:6], consent_row[0], *row[7:])
            rows.append(row)
        if not rows:
            return []
        fresh = {c[0] for c in stated}  # recorded here from the request: in force from this instant
        cached: dict[str, list[Row]] = {}
        with self._store.transaction() as conn:
            if stated:
                conn.executemany(f"INSERT INTO consent ({_CONSENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)", stated)
            dims: dict[str, int] = {}
            for row in rows:
                _, subject_id, model_id, dim, _, purpose, consent_id = row[:7]
                if consent_id in fresh:
                    ends = [row[9]]
                elif consent_id is not None:
                    found = conn.execute(f"SELECT {_CONSENT_COLUMNS} FROM consent WHERE id = ?", (consent_id,)).fetchone()
                    consent = None if found is None else _consent_record(found)
                    if (
                        consent is None
                        or consent["subject_id"] != subject_id
                        or purpose not in consent["purposes"]
                        or not in_force(consent, enrolled_at)
                    ):
                        raise StoreError(f"consent `{consent_id}` is not in force for this subject and purpose `{purpose}`")
                    ends = [t for t in (row[9], consent["withdrawn_at"], consent["expires_at"]) if t is not None]
                else:
                    ends = [row[9]]
                cached.setdefault(model_id, []).append((row[0], subject_id, consent_id, row[4], _micros(min(ends))))
                if model_id not in dims:
                    known = conn.execute("SELECT dim FROM template WHERE model_id = ? LIMIT 1", (model_id,)).fetchone()
                    dims[model_id] = dim if known is None else int(known[0])
                if dims[model_id] != dim:
                    raise StoreError(f"model `{model_id}` templates have {dims[model_id]} dimensions, got {dim}")
            conn.executemany(
                "INSERT INTO template (id, subject_id, model_id, dim, vector, purpose, consent_id, location, "
                "enrolled_at, expires_at, decision_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            before = self._store.bump_gallery_generation(conn, ("add", [row[0] for row in rows], None))

        def add(cache: MatrixCache) -> None:
            for model, model_rows in cached.items():
                cache.add(model, model_rows)

        self._cache.apply(before, add)
        ids = [row[0] for row in rows]
        try:
            self._evidence([{
                "kind": "consent", "action": "granted", "source": "request", "effective_at": c[5],
                "subject_pseudonym": self._store.audit.pseudonym(c[1]), "consent_ids": [c[0]],
                "type": c[2], "given_by": c[3], "purposes": json.loads(c[4]),
                "decision_id": next(r[10] for r in rows if r[6] == c[0]),
            } for c in stated] + [{
                "kind": "enrollment", "template_id": row[0],
                "subject_pseudonym": self._store.audit.pseudonym(row[1]), "purpose": row[5],
                "consent_id": row[6], "model_id": row[2], "location": row[7],
                "expires_at": row[9], "decision_id": row[10],
            } for row in rows])
        except AuditWriteError as exc:  # no enrolment without its evidence: take it back
            marks = ",".join("?" * len(ids))
            try:
                self._erase(f"id IN ({marks})", tuple(ids), "unlogged enrolment", log=False)
            except StoreError as undo:
                raise AuditWriteError(f"{exc}; and the unlogged enrolment could not be undone: {undo}") from exc
            raise AuditWriteError(f"template not enrolled: {exc}") from exc
        return ids

    def _row(self, entry: Mapping[str, Any], now: datetime) -> tuple[Any, ...]:
        """Check one enrolment's arguments; return its ``template`` row."""
        try:
            subject_id, vector, purpose = entry["subject_id"], entry["vector"], entry["purpose"]
            consent_id, retention_days = entry["consent_id"], entry["retention_days"]
            location, model_id = entry["location"], entry["model_id"]
        except KeyError as exc:
            raise StoreError(f"enrolment needs `{exc.args[0]}`") from None
        decision_id = entry.get("decision_id")
        if not isinstance(subject_id, str) or not subject_id:
            raise StoreError("enrolment needs a non-empty `subject_id`")
        if not isinstance(model_id, str) or not model_id:
            raise StoreError("enrolment needs a non-empty `model_id`")
        if location not in self._store.storage_locations:
            allowed = ", ".join(sorted(self._store.storage_locations))
            raise StoreError(f"template location `{location}` is not allowed by this store (allowed: {allowed})")
        if purpose not in PURPOSES:
            raise StoreError(f"purpose `{purpose}` is not a request-contract purpose")
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
            raise StoreError(f"retention_days `{retention_days}` is not a positive whole number of days")
        array = _as_vector(vector, "template")
        return ("tpl-" + uuid.uuid4().hex, subject_id, model_id, array.size, array.tobytes(), purpose, consent_id,
                location, iso(now), iso(now + timedelta(days=retention_days)), decision_id)

    # -- matching ------------------------------------------------------------------------------
    def _generation_in_database(self) -> int:
        """The gallery generation in the file now.  Read again only if anything was committed to the
        file since the last read (``_walwatch``: no query, so an event loop asking on every request
        does not hand the interpreter lock to the audit writer on every request)."""
        watch = getattr(self._store, "commit_watch", None)
        stamp = None if watch is None or self._store.closed else watch.stamp()
        known = self._known_generation
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        with self._store.reading() as conn:
            generation = _generation(conn)
        if stamp is not None:  # read after the stamp was taken: current for as long as the stamp is
            self._known_generation = (stamp, generation)
        return generation

    def _generation_now(self) -> int:
        """The gallery generation identify works at (a backend may know it without asking)."""
        return self._generation_in_database()

    def _snapshot(self, model_id: str | None) -> tuple[str, Snapshot] | None:
        generation = self._generation_now()
        if model_id is None:
            with self._cache.lock:
                self._cache.sync(generation)
                models = self._cache.models
            if models is None:
                with self._store.reading() as conn:
                    models = tuple(r[0] for r in conn.execute("SELECT DISTINCT model_id FROM template"))
                with self._cache.lock:
                    if self._cache.generation == generation:
                        self._cache.models = models
            if not models:
                return None
            if len(models) > 1:
                raise StoreError(f"the gallery holds templates of {len(models)} models; pass `model_id`")
            model_id = models[0]
        snapshot = self._cache.get(model_id, generation, self._load)
        return None if snapshot is None else (model_id, snapshot)

    def _load(self, model_id: str) -> tuple[int, int, list[Row]]:
        """(generation, dimension, rows) of one model, read in one snapshot of the file."""
        with self._store.snapshot() as conn:  # its own connection: the store lock stays free meanwhile
            generation = _generation(conn)
            rows = conn.execute(
                f"SELECT t.id, t.subject_id, t.consent_id, t.dim, t.vector, {self._valid_until} FROM template t "
                "LEFT JOIN consent c ON c.id = t.consent_id WHERE t.model_id = :model",
                {"model": model_id, "forever": _FOREVER},
            ).fetchall()
        if not rows:
            return generation, 0, []
        until = np.array([r[5] for r in rows], dtype="datetime64[us]").astype(np.int64).tolist()
        return generation, int(rows[0][3]), [(r[0], r[1], r[2], r[4], u) for r, u in zip(rows, until)]

    def identify(
        self,
        vector: Any,
        *,
        k: int = 5,
        threshold: float,
        metric: Metric = "cosine",
        model_id: str | None = None,
    ) -> list[Match]:
        """1:N search: up to ``k`` matches past ``threshold``, best first.

        ``cosine``: score is the cosine similarity, kept if ``>= threshold``; ``euclidean``:
        score is the distance, kept if ``<= threshold``.  Templates past retention or whose
        consent has ended are never returned.  ``model_id`` may be omitted while the gallery
        holds a single model.
        """
        if metric not in ("cosine", "euclidean"):
            raise StoreError(f"metric `{metric}` is not `cosine` or `euclidean`")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise StoreError(f"k `{k}` is not a positive integer")
        query = _as_vector(vector, "probe")
        found = self._snapshot(model_id)
        if found is None:
            return []
        model, m = found
        if query.size != m.raw.shape[1]:
            raise StoreError(f"probe has {query.size} dimensions, model `{model}` templates have {m.raw.shape[1]}")
        # einsum, not ``@``: a single-threaded SIMD loop.  BLAS gemv here would use every core
        # and, on a busy machine, spend more time synchronising its threads than computing.
        cosine = metric == "cosine"
        if cosine:
            scores = np.einsum("ij,j->i", m.unit, query / np.float32(np.linalg.norm(query)))
        else:
            squared = m.sqnorm - 2.0 * np.einsum("ij,j->i", m.raw, query) + np.float32(query @ query)
            scores = np.sqrt(np.maximum(squared, 0.0, out=squared), out=squared)
        now = _micros(iso(utc_now()))
        if now >= m.first_invalid:
            scores[m.valid_until <= now] = -np.inf if cosine else np.inf
        # Only templates past the threshold can be returned: select those first (cheap), then
        # partition just them -- usually a handful, not the whole gallery.
        keep = np.flatnonzero(scores >= threshold if cosine else scores <= threshold)
        ranked = -scores[keep] if cosine else scores[keep]
        if keep.size > k:
            best = np.argpartition(ranked, k - 1)[:k]
            keep, ranked = keep[best], ranked[best]
        keep = keep[np.argsort(ranked, kind="stable")]
        return [Match(m.subjects[i], m.ids[i], float(scores[i])) for i in keep.tolist()]

    def verify(
        self,
        subject_id: str,
        vector: Any,
        *,
        threshold: float,
        metric: Metric = "cosine",
        model_id: str | None = None,
    ) -> tuple[bool, float | None]:
        """1:1: the best score against the subject's usable templates and whether it passes.

        Returns ``(False, None)`` when the subject has no usable template.
        """
        if metric not in ("cosine", "euclidean"):
            raise StoreError(f"metric `{metric}` is not `cosine` or `euclidean`")
        query = _as_vector(vector, "probe")
        now = iso(utc_now())
        sql = (f"SELECT t.model_id, t.dim, t.vector, {self._valid_until} FROM template t "
               "LEFT JOIN consent c ON c.id = t.consent_id WHERE t.subject_id = :subject")
        params: dict[str, Any] = {"subject": subject_id, "forever": _FOREVER}
        if model_id is not None:
            sql += " AND t.model_id = :model"
            params["model"] = model_id
        with self._store.reading() as conn:
            rows = [r for r in conn.execute(sql, params).fetchall() if r[3] > now[:26]]
        if not rows:
            return False, None
        if len({r[0] for r in rows}) > 1:
            raise StoreError("the subject's templates come from several models; pass `model_id`")
        if int(rows[0][1]) != query.size:
            raise StoreError(f"probe has {query.size} dimensions, the subject's templates have {rows[0][1]}")
        templates = np.frombuffer(b"".join(bytes(r[2]) for r in rows), dtype="<f4").reshape(len(rows), -1)
        if metric == "cosine":
            unit = templates / np.linalg.norm(templates, axis=1)[:, None]
            best = float(np.max(unit @ (query / np.linalg.norm(query))))
            return best >= threshold, best
        best = float(np.min(np.linalg.norm(templates - query, axis=1)))
        return best <= threshold, best

    def count_subjects(self) -> int:
        """Distinct subjects with at least one template in the file (what ``stored_persons`` counts).

        The gate asks on every request, so the count is cached per gallery generation.
        """
        generation = self._generation_in_database()
        with self._cache.lock:
            self._cache.sync(generation)
            if self._cache.subjects is not None:
                return self._cache.subjects
        with self._store.reading() as conn:
            count = int(conn.execute("SELECT COUNT(DISTINCT subject_id) FROM template").fetchone()[0])
        with self._cache.lock:
            if self._cache.generation == generation:
                self._cache.subjects = count
        return count

    def count_templates(self) -> int:
        with self._store.reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM template").fetchone()[0])

    def get(self, template_id: str) -> dict[str, Any] | None:
        """A template's stamps (not its vector), or ``None``."""
        with self._store.reading() as conn:
            row = conn.execute(
                "SELECT id, subject_id, model_id, dim, purpose, consent_id, location, enrolled_at, expires_at, "
                "decision_id FROM template WHERE id = ?", (template_id,)).fetchone()
        if row is None:
            return None
        keys = ("template_id", "subject_id", "model_id", "dim", "purpose", "consent_id", "location",
                "enrolled_at", "expires_at", "decision_id")
        return dict(zip(keys, row))

    # -- erasure -------------------------------------------------------------------------------
    def erase_subject(self, subject_id: str) -> int:
        """Erase every template of a subject; return how many."""
        return self._erase("subject_id = ?", (subject_id,), "subject")

    def erase_by_consent(self, consent_id: str) -> int:
        """Erase every template enrolled under a consent record; return how many."""
        return self._erase("consent_id = ?", (consent_id,), "consent")

    def purge_expired(self, now: Timestamp | None = None) -> int:
        """Erase templates past their retention deadline or whose consent is withdrawn or expired."""
        try:
            when = iso(utc_now() if now is None else to_utc(now))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"bad `now`: {exc}") from exc
        return self._erase(
            "expires_at <= ? OR consent_id IN (SELECT id FROM consent WHERE withdrawn_at <= ? OR expires_at <= ?)",
            (when, when, when), "retention")

    def _erase(self, where: str, params: tuple[Any, ...], reason: str, *, log: bool = True) -> int:
        with self._store.transaction() as conn:
            rows = conn.execute(f"SELECT id, subject_id, consent_id FROM template WHERE {where}", params).fetchall()
            if rows:
                conn.execute(f"DELETE FROM template WHERE {where}", params)
                before = self._store.bump_gallery_generation(conn, ("remove", [r[0] for r in rows], None))
        if rows:
            self._cache.apply(before, lambda cache: cache.remove(r[0] for r in rows))
        if rows or self._store._scrub_pending:
            self._store.scrub()
        if rows and log:
            by_subject: dict[str, list[str]] = {}
            for template_id, subject, _ in rows:
                by_subject.setdefault(subject, []).append(template_id)
            try:
                self._evidence([
                    {"kind": "erasure", "reason": reason, "subject_pseudonym": self._store.audit.pseudonym(subject),
                     "template_ids": ids, "count": len(ids)}
                    for subject, ids in sorted(by_subject.items())
                ])
            except AuditWriteError as exc:  # the erasure stands: the law wants the data gone
                raise AuditWriteError(f"erased {len(rows)} templates but could not log the erasure: {exc}") from exc
        return len(rows)

    def consent_ended(self, before: int, consent_ids: list[str], when: str) -> None:
        """The consent registry withdrew ``consent_ids`` at ``when`` (generation ``before + 1``)."""
        until = _micros(when)
        self._cache.apply(before, lambda cache: cache.restrict(consent_ids, until))

    def schedule_purge(self, every: float) -> PurgeSchedule:
        """Run ``purge_expired`` now and every ``every`` seconds in a daemon thread until ``stop()``
        (or the store closes)."""
        schedule = PurgeSchedule(self, every)
        self._schedules.append(schedule)
        return schedule

    def stop_schedules(self) -> None:
        for schedule in self._schedules:
            schedule.stop()
        self._schedules.clear()

    def _evidence(self, records: list[dict[str, Any]]) -> None:
        if self._store.log_store_events:
            self._store.audit.append_many(records)
