"""The consent registry: recorded consent per subject, looked up by the gate.

A record holds type (``separate``/``written``/``bundled``), who gave it (``subject`` or
``guardian``), the purposes it covers, when it was granted, when it expires and when it was
withdrawn.  ``lookup(subject, purpose, at)`` answers in the request contract's shape; a
withdrawn or expired record answers ``"withdrawn": true`` from that instant on.  Withdrawing
does not delete the record: it is the evidence that consent existed and ended.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._canonical import iso, utc_now
from ._errors import AuditWriteError, StoreError
from ._interface import CONSENT_GIVERS, CONSENT_TYPES, PURPOSES, UNSTATED, Timestamp

if TYPE_CHECKING:
    from ._sqlite import SQLiteStore

_COLUMNS = "id, subject_id, type, given_by, purposes, granted_at, expires_at, withdrawn_at"


def _when(value: Timestamp | None, name: str) -> str:
    try:
        return iso(utc_now() if value is None else value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"bad `{name}`: {exc}") from exc


def _record(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    rid, subject_id, type_, given_by, purposes, granted_at, expires_at, withdrawn_at = row
    return {
        "record_id": rid,
        "subject_id": subject_id,
        "type": type_,
        "given_by": given_by,
        "purposes": json.loads(purposes),
        "granted_at": granted_at,
        "expires_at": expires_at,
        "withdrawn_at": withdrawn_at,
    }


def in_force(record: dict[str, Any], at: str) -> bool:
    """Granted by ``at``, and neither withdrawn nor expired at ``at`` (times are sortable text)."""
    return (
        record["granted_at"] <= at
        and (record["withdrawn_at"] is None or record["withdrawn_at"] > at)
        and (record["expires_at"] is None or record["expires_at"] > at)
    )


class SQLiteConsentRegistry:
    """``ConsentRegistry`` over the store's file.  Use ``SQLiteStore.consent``."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def grant(
        self,
        subject_id: str,
        *,
        type: str,
        given_by: str,
        purposes: Sequence[str],
        expires_at: Timestamp | None = None,
        at: Timestamp | None = None,
    ) -> str:
        """Record a consent; return its record id (``consent-<hex>``)."""
        if not isinstance(subject_id, str) or not subject_id:
            raise StoreError("consent needs a non-empty `subject_id`")
        if type not in CONSENT_TYPES:
            raise StoreError(f"consent type `{type}` is not one of {', '.join(CONSENT_TYPES)}")
        if given_by not in CONSENT_GIVERS:
            raise StoreError(f"consent given_by `{given_by}` is not one of {', '.join(CONSENT_GIVERS)}")
        if isinstance(purposes, str) or not purposes:
            raise StoreError("consent needs a non-empty list of `purposes`")
        for purpose in purposes:
            if purpose not in PURPOSES:
                raise StoreError(f"consent purpose `{purpose}` is not a request-contract purpose")
        granted_at = _when(at, "at")
        expires = None if expires_at is None else _when(expires_at, "expires_at")
        if expires is not None and expires <= granted_at:
            raise StoreError(f"consent `expires_at` {expires} is not after its grant time {granted_at}")
        record_id = "consent-" + uuid.uuid4().hex
        purposes_json = json.dumps(sorted(set(purposes)))
        with self._store.transaction() as conn:
            conn.execute(
                f"INSERT INTO consent ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (record_id, subject_id, type, given_by, purposes_json, granted_at, expires),
            )
        try:
            self._evidence("granted", subject_id, [record_id], granted_at,
                           {"type": type, "given_by": given_by, "purposes": json.loads(purposes_json),
                            "expires_at": expires})
        except AuditWriteError as exc:  # unlogged consent must never be in force: end it at once
            with self._store.transaction() as conn:
                conn.execute("UPDATE consent SET withdrawn_at = granted_at WHERE id = ?", (record_id,))
            raise AuditWriteError(f"consent not recorded as in force: {exc}") from exc
        return record_id

    def withdraw(self, ref: str, at: Timestamp | None = None) -> list[str]:
        """Withdraw consent record ``ref``, or, if no record has that id, every consent of subject ``ref``.

        Returns the record ids withdrawn (already-withdrawn records are left as they were).
        Templates enrolled under them stop matching at ``at``; erase them with
        ``gallery.erase_by_consent`` or ``SQLiteStore.withdraw_consent`` (which does both).
        """
        when = _when(at, "at")
        with self._store.transaction() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM consent WHERE id = ? AND withdrawn_at IS NULL", (ref,))]
            if not ids and conn.execute("SELECT 1 FROM consent WHERE id = ?", (ref,)).fetchone() is None:
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM consent WHERE subject_id = ? AND withdrawn_at IS NULL ORDER BY granted_at", (ref,))]
            if ids:
                conn.executemany("UPDATE consent SET withdrawn_at = ? WHERE id = ?", [(when, i) for i in ids])
                before = self._store.bump_gallery_generation(conn, ("restrict", ids, when))
            subjects = {r[0] for r in conn.execute(
                f"SELECT subject_id FROM consent WHERE id IN ({','.join('?' * len(ids))})", ids)} if ids else set()
        if ids:
            self._store.gallery.consent_ended(before, ids, when)
        try:
            for subject in sorted(subjects):
                self._evidence("withdrawn", subject, ids, when, {})
        except AuditWriteError as exc:  # the withdrawal stands
            raise AuditWriteError(f"consent withdrawn but the withdrawal could not be logged: {exc}") from exc
        return ids

    def lookup(self, subject_id: str, purpose: str | None = None, at: Timestamp | None = None) -> dict[str, Any] | None:
        """The consent the gate should put in a request, or ``None`` if none was ever granted.

        Among the subject's records granted by ``at`` (and covering ``purpose`` if given), an
        in-force one is preferred -- the strongest type first (written, separate, bundled), then
        the most recent; if none is in force, the most recent one answers with
        ``"withdrawn": true`` (withdrawn or expired).  Returns ``{"type", "given_by",
        "purposes", "withdrawn", "record_id"}``; copy the first four into the request.
        """
        when = _when(at, "at")
        with self._store.reading() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM consent WHERE subject_id = ? AND granted_at <= ?", (subject_id, when)
            ).fetchall()
        records = [_record(row) for row in rows]
        if purpose is not None:
            records = [r for r in records if purpose in r["purposes"]]
        if not records:
            return None
        live = [r for r in records if in_force(r, when)]
        if live:
            best = max(live, key=lambda r: (-CONSENT_TYPES.index(r["type"]), r["granted_at"]))
        else:
            best = max(records, key=lambda r: r["granted_at"])
        found = {
            "type": best["type"],
            "given_by": best["given_by"],
            "purposes": best["purposes"],
            "withdrawn": not live,
            "record_id": best["record_id"],
        }
        if found["given_by"] == UNSTATED:  # recorded from a request that did not say
            del found["given_by"]
        return found

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The whole record: ids, type, giver, purposes and the three times (``None`` if absent)."""
        with self._store.reading() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM consent WHERE id = ?", (record_id,)).fetchone()
        return None if row is None else _record(row)

    def _evidence(self, action: str, subject_id: str, ids: list[str], when: str, extra: dict[str, Any]) -> None:
        if self._store.log_store_events:
            self._store.audit.append({"kind": "consent", "action": action, "effective_at": when,
                                      "subject_pseudonym": self._store.audit.pseudonym(subject_id),
                                      "consent_ids": ids, **extra})
