"""One vocabulary: names read from the published schemas, and the engine's own codes as enumerations.

Operation, attribute, purpose and storage-location names come from the core request envelope
(``request.v2.json``), so no module keeps a hand copy that can drift.  Decision effects, reasons,
rule outcomes and gate statuses are :class:`enum.StrEnum` members: they compare equal to (and
serialise as) their plain strings, so records and JSON stay exactly as before.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from . import _schema


def _core(*path: str) -> tuple[str, ...]:
    node: Any = _schema.load_schema("request.v2.json")
    for key in path:
        node = node[key]
    return tuple(node)


#: Operations of the core envelope: the gate can execute each of them.
OPERATIONS: tuple[str, ...] = _core("properties", "operation", "enum")
#: Attributes an ``analyze`` request may name.
ATTRIBUTES: tuple[str, ...] = _core("properties", "attributes", "items", "enum")
#: Purposes a request (and a consent) may name.
PURPOSES: tuple[str, ...] = _core("properties", "purpose", "enum")
#: Where an enrolled template may be stored.
LOCATIONS: tuple[str, ...] = _core("properties", "storage", "properties", "location", "enum")


class Effect(StrEnum):
    """A decision's effect."""

    PERMIT = "permit"
    DENY = "deny"


class Reason(StrEnum):
    """Why a decision came out as it did (``Decision.reason``)."""

    PERMITTED = "permitted"
    FORBIDDEN = "forbidden"
    NO_PERMIT = "no_permit"
    INVALID_REQUEST = "invalid_request"
    POLICY_NOT_IN_FORCE = "policy_not_in_force"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    NO_GOVERNING_PACK = "no_governing_pack"


class RuleOutcome(StrEnum):
    """One rule's outcome in a decision (``Decision.rules``)."""

    APPLIED = "applied"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"
    SKIPPED = "skipped"


class Status(StrEnum):
    """What the gate did with a request (``Outcome.status``)."""

    EXECUTED = "executed"
    DENIED = "denied"
    ERROR = "error"


class RuleEffect(StrEnum):
    """A rule's ``effect`` (policy schema)."""

    FORBID = "forbid"
    PERMIT = "permit"
    OBLIGATION = "obligation"
    ADVICE = "advice"


class Mode(StrEnum):
    """A rule's ``mode`` (policy schema)."""

    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"
