"""The storage interface the gate talks to, and the small values it returns.

Three narrow protocols -- ``AuditLog``, ``ConsentRegistry``, ``Gallery`` -- and ``Store``,
which bundles them.  ``SQLiteStore`` is the embedded default; a PostgreSQL store implements the
same four protocols (see docs/evidence.md) and the gate does not change.  Timestamps in and
out are aware datetimes or ISO-8601 strings with an offset; vectors are 1-D numpy arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .. import _vocabulary

Metric = Literal["cosine", "euclidean"]
Timestamp = datetime | str

CONSENT_TYPES = ("separate", "written", "bundled")  # strongest first: lookup prefers this order
CONSENT_GIVERS = ("subject", "guardian")
UNSTATED = "unstated"  # ``given_by`` of a consent recorded from a request that did not say who gave it
#: The request contract's purposes; a consent naming another purpose is refused.
PURPOSES = _vocabulary.PURPOSES
LOCATIONS = _vocabulary.LOCATIONS


class AuditReceipt(NamedTuple):
    """Proof that a record is durably in the log: its sequence number and chain hash."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of checking the hash chain; ``problems`` name the sequence number of each."""

    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    head: AuditReceipt | None = None  # the last record checked: keep it as an external anchor


@dataclass(frozen=True, slots=True)
class Match:
    """One gallery hit: cosine similarity (higher is closer) or euclidean distance (lower is)."""

    subject_id: str
    template_id: str
    score: float


@runtime_checkable
class AuditLog(Protocol):
    """Append-only, hash-chained decision log.  There is no update or delete."""

    def append(self, record: Mapping[str, Any]) -> AuditReceipt:
        """Mask, chain and durably commit one record; raise ``AuditWriteError`` on any failure."""
        ...

    def verify(self, anchor: AuditReceipt | None = None) -> VerifyReport:
        """Recompute the whole chain; with ``anchor``, also check that record is still there."""
        ...

    def head(self) -> AuditReceipt | None:
        """The last committed record's receipt, or ``None`` for an empty log."""
        ...

    def query(
        self,
        since: Timestamp | None = None,
        until: Timestamp | None = None,
        provision: str | None = None,
        effect: str | None = None,
        kind: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield ``{"seq", "prev", "hash", "record"}`` in log order; ``until`` is exclusive."""
        ...

    def export_jsonl(self, fp: IO[str], **filters: Any) -> int:
        """Write the ``query`` rows as JSON Lines (canonical, verifiable); return the count."""
        ...

    def pseudonym(self, identifier: Any) -> str:
        """The masked form of an identifier, to find a person's records."""
        ...


@runtime_checkable
class ConsentRegistry(Protocol):
    """Consent evidence per subject; withdrawal and expiry take effect immediately."""

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
        """Record a consent and return its record id."""
        ...

    def withdraw(self, ref: str, at: Timestamp | None = None) -> list[str]:
        """Withdraw a consent record, or every consent of a subject; return the record ids."""
        ...

    def lookup(
        self, subject_id: str, purpose: str | None = None, at: Timestamp | None = None
    ) -> dict[str, Any] | None:
        """``{"type", "given_by", "purposes", "withdrawn", "record_id"}`` or ``None``."""
        ...

    def get(self, record_id: str) -> dict[str, Any] | None:
        """The full consent record (times included), or ``None``."""
        ...


@runtime_checkable
class Gallery(Protocol):
    """Enrolled templates, each stamped with purpose, consent, retention and location."""

    def enroll(
        self,
        subject_id: str,
        vector: np.ndarray,
        *,
        purpose: str,
        consent_id: str | None,
        retention_days: int,
        location: str,
        model_id: str,
        decision_id: str | None = None,
        consent_facts: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a template and return its id; with ``consent_id=None``, ``consent_facts`` (the
        request's own consent facts) is recorded as the consent the template rests on."""
        ...

    def identify(
        self,
        vector: np.ndarray,
        *,
        k: int = 5,
        threshold: float,
        metric: Metric = "cosine",
        model_id: str | None = None,
    ) -> list[Match]:
        """1:N: the best ``k`` templates past ``threshold``, best first."""
        ...

    def verify(
        self,
        subject_id: str,
        vector: np.ndarray,
        *,
        threshold: float,
        metric: Metric = "cosine",
        model_id: str | None = None,
    ) -> tuple[bool, float | None]:
        """1:1 against the subject's templates: (match, best score or ``None`` if none)."""
        ...

    def erase_subject(self, subject_id: str) -> int: ...

    def erase_by_consent(self, consent_id: str) -> int: ...

    def purge_expired(self, now: Timestamp | None = None) -> int:
        """Erase templates past retention or whose consent is withdrawn or expired."""
        ...

    def count_subjects(self) -> int:
        """Distinct subjects with at least one stored template (``stored_persons``)."""
        ...


@runtime_checkable
class Store(Protocol):
    """One evidence store: the three parts, closed together."""

    @property
    def audit(self) -> AuditLog: ...

    @property
    def consent(self) -> ConsentRegistry: ...

    @property
    def gallery(self) -> Gallery: ...

    def close(self) -> None: ...
