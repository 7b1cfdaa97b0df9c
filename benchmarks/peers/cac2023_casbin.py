"""Casbin adapter for the CAC-2023 benchmark (pycasbin, ABAC with ``eval()`` matchers).

The model (``cac2023_casbin.conf``) and the policy lines (``cac2023_casbin.csv``) are loaded
once.  Per request the integrator's side flattens the request into the attribute objects the
conditions read -- ``r.sub`` (every fact but the data subject's, ``None`` where the request is
silent), ``r.obj`` (the data subject), ``r.act`` (the operation) -- and calls ``enforce``.
Casbin answers a boolean only; ``decide`` returns ``(effect, [])``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import casbin

MODEL_FILE = Path(__file__).with_name("cac2023_casbin.conf")
POLICY_FILE = Path(__file__).with_name("cac2023_casbin.csv")
_EMPTY: Mapping[str, Any] = {}


def facts(request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The request as Casbin's ``r.sub``, ``r.obj`` and ``r.act``."""
    actor = request.get("actor", _EMPTY)
    pia = actor.get("pia", _EMPTY)
    place = request.get("place", _EMPTY)
    capture = request.get("capture", _EMPTY)
    consent = request.get("consent", _EMPTY)
    basis = request.get("legal_basis", _EMPTY)
    subject = request.get("subject", _EMPTY)
    attributes = request.get("attributes")
    sub = {
        "purpose": request["purpose"],
        "jurisdiction": request.get("jurisdiction"),
        "role": actor.get("role"),
        "sector": actor.get("sector"),
        "pia_completed": pia.get("completed"),
        "pia_covers_purpose": pia.get("covers_purpose"),
        "place_type": place.get("type"),
        "signage": place.get("signage"),
        "open_to_public": place.get("open_to_public"),
        "capture_mode": capture.get("mode"),
        "purpose_prompt_shown": capture.get("purpose_prompt_shown"),
        "initiated_by": capture.get("initiated_by"),
        "consent_type": consent.get("type"),
        "consent_given_by": consent.get("given_by"),
        "consent_purposes": consent.get("purposes"),
        "consent_withdrawn": consent.get("withdrawn"),
        "ground": basis.get("ground"),
        "citation": basis.get("citation"),
        "alternative_offered": request.get("alternative", _EMPTY).get("offered"),
        "raw_image": request.get("storage", _EMPTY).get("raw_image"),
        "human_review": request.get("review", _EMPTY).get("human_review"),
        "attributes": None if attributes is None else frozenset(attributes),
    }
    obj = {"age": subject.get("age"), "declined_face": subject.get("declined_face")}
    return sub, obj, request["operation"]


class CasbinEngine:
    def __init__(self, model: Path = MODEL_FILE, policy: Path = POLICY_FILE) -> None:
        self.enforcer = casbin.Enforcer(str(model), str(policy))
        # pycasbin logs every deny as a warning; an integrator would silence it too.
        logging.getLogger("casbin").setLevel(logging.ERROR)

    def decide(self, request: Mapping[str, Any]) -> tuple[str, list[str]]:
        return ("permit" if self.enforcer.enforce(*facts(request)) else "deny"), []
