"""``/v1/decide``: a decision written ahead to the audit log, with no recognizer call.

``Gate.process`` decides *and* executes; a decide-only call must not leave an execution record
behind, so the service decides with the gate's own policy and evidence (its consent registry
in the configured mode, its gallery's subject count) and appends the decision record the gate's
own builder makes.  The decision is returned only after that record is durable.  (A public
``Gate.decide`` -- decide and write ahead, run nothing -- would replace this module.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..gate import Gate, _decision_record  # the record format is the gate's; no public builder yet
from ..policy import Decision


def facts_of(gate: Gate, request: Any) -> Any:
    """The request's facts with the evidence the gate would add (consent registry, stored persons)."""
    if not isinstance(request, Mapping):
        return request
    facts = dict(request)
    subject = facts.get("subject")
    subject_id = subject.get("id") if isinstance(subject, Mapping) else None
    if gate.consent_mode != "request-only" and gate.consent is not None:
        recorded = gate.consent.lookup(subject_id, facts.get("purpose")) if isinstance(subject_id, str) else None
        if recorded is not None:
            facts["consent"] = {k: recorded[k] for k in ("type", "given_by", "purposes", "withdrawn") if k in recorded}
        elif gate.consent_mode == "registry-only":
            facts.pop("consent", None)
    if gate.gallery is not None and isinstance(facts.get("actor", {}), Mapping):
        facts["actor"] = {**facts.get("actor", {}), "stored_persons": int(gate.gallery.count_subjects())}
    return facts


def record_of(decision: Decision, facts: Any) -> dict[str, Any]:
    """The gate's own decision record (same builder, so the two cannot drift), marked as decide-only."""
    return {**_decision_record(decision, facts), "channel": "decide"}


class AuditUnavailable(Exception):
    """The decision record could not be written: the caller gets 503 and a deny."""

    def __init__(self, decision: Decision, why: str) -> None:
        super().__init__(why)
        self.decision = decision


def decide(gate: Gate, audit: Any, request: Any, *, explain: bool = False) -> tuple[Decision, Any]:
    """Decide and durably record; returns the decision and the audit receipt."""
    try:
        facts = facts_of(gate, request)
        decision = gate.policy.decide(facts, explain=explain)
    except Exception as exc:  # the evidence store failed: decide nothing on guessed facts
        facts = request
        decision = _denied(gate.policy.decide(request), "evidence_unavailable", "facegate.evidence",
                           f"consent registry or gallery failed: {exc}")
    try:
        receipt = audit.append(record_of(decision, facts))
    except Exception as exc:
        raise AuditUnavailable(_denied(decision, "audit_unavailable", "facegate.audit", f"decision record not written: {exc}"),
                               f"audit log unavailable: {exc}") from exc
    return decision, receipt


def _denied(decision: Decision, reason: str, source: str, error: str) -> Decision:
    return dataclasses.replace(
        decision, effect="deny", reason=reason, determining=(), obligations=(),
        errors=decision.errors + ({"rule": source, "provision": "", "mode": "enforce", "error": error},),
    )
