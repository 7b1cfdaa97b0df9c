"""Facts from evidence: consent from the registry, ``actor.stored_persons`` from the gallery."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CONSENT_MODES = ("request-only", "registry-only", "registry-overrides")


def facts_for(request: Any, consent_mode: str, consent: Any, gallery: Any) -> tuple[Any, str | None]:
    """The request's facts, with consent and ``stored_persons`` from evidence where configured.

    Returns the facts and the consent record id they rest on (``None`` if from the request).
    """
    if not isinstance(request, Mapping):
        return request, None
    record_id: str | None = None
    facts = dict(request)
    subject = facts.get("subject")
    subject_id = subject.get("id") if isinstance(subject, Mapping) else None
    if consent_mode != "request-only":
        recorded = consent.lookup(subject_id, facts.get("purpose")) if isinstance(subject_id, str) else None
        if recorded is not None:
            facts["consent"] = {k: recorded[k] for k in ("type", "given_by", "purposes", "withdrawn") if k in recorded}
            record_id = recorded.get("record_id")
        elif consent_mode == "registry-only":
            facts.pop("consent", None)
    if gallery is not None and isinstance(facts.get("actor", {}), Mapping):
        facts["actor"] = {**facts.get("actor", {}), "stored_persons": int(gallery.count_subjects())}
    return facts, record_id
