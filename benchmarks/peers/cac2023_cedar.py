"""Cedar adapter for the CAC-2023 benchmark: policies parsed once, entities and context per request.

This is what an integrator using ``cedarpy`` would write: the actor becomes the principal
entity, the data subject the resource entity, the operation the action, and every other fact of
the request goes into the context.  ``decide`` returns ``(effect, determining)`` with the
``@id`` of the policies Cedar reports as reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cedarpy

POLICY_FILE = Path(__file__).with_name("cac2023.cedar")
_CONTEXT_KEYS = ("purpose", "jurisdiction", "place", "capture", "consent", "legal_basis", "alternative", "storage", "review", "attributes")
_ACTOR_ATTRS = ("role", "sector", "stored_persons", "filing", "pia")
_SUBJECT_ATTRS = ("age", "declined_face")


class CedarEngine:
    def __init__(self, path: Path = POLICY_FILE) -> None:
        self.policies = cedarpy.PolicySet.from_str(path.read_text(encoding="utf-8"))
    def decide(self, request: Mapping[str, Any]) -> tuple[str, list[str]]:
        actor = request.get("actor", {})
        subject = request.get("subject", {})
        actor_uid = {"type": "Actor", "id": actor.get("id", "unknown")}
        subject_uid = {"type": "Subject", "id": subject.get("id", "unknown")}
        entities = [
            {"uid": actor_uid, "attrs": {k: actor[k] for k in _ACTOR_ATTRS if k in actor}, "parents": []},
            {"uid": subject_uid, "attrs": {k: subject[k] for k in _SUBJECT_ATTRS if k in subject}, "parents": []},
        ]
        query = {
            "principal": actor_uid,
            "action": {"type": "Action", "id": request["operation"]},
            "resource": subject_uid,
            "context": {k: request[k] for k in _CONTEXT_KEYS if k in request},
        }
        result = cedarpy.is_authorized(query, self.policies, entities)
        return ("permit" if result.allowed else "deny"), self._reasons(result)

    @staticmethod
    def _reasons(result: Any) -> list[str]:
        """Cedar names policies ``policy0``...; report them by their ``@id`` annotation."""
        diagnostics = result.diagnostics
        by_reason = diagnostics.id_annotations_by_reason
        return [by_reason.get(r, r) for r in diagnostics.reasons]
