"""The CAC-2023 pack written by hand in plain Python: the floor every engine is measured against.

``decide(request)`` returns ``(effect, determining)``: ``"permit"`` or ``"deny"`` and the ids of
the rules that decided it (the forbids that applied, else the permits that applied), computed
the way facegate combines rules (forbid overrides permit, default deny).  Only rules that can
change the effect are written out: advice, obligations and ``mode: warn`` rules never do.

Fail closed, as the pack's CEL does: where a forbid's condition reads a field without ``has()``
(``request.place.type`` in cn23-06, ``request.capture.mode`` in cn23-13, ``request.attributes``
in cn23-14), a missing field is an evaluation error and the forbid applies.  An ``unless`` of
several items lifts a rule only when all of them hold (facegate's combining rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MINOR_AGE = 14
SENSITIVE = frozenset({"race", "ethnicity", "religion", "health", "social_class"})
SECURITY_EMERGENCY = frozenset({"national_security", "public_security", "emergency"})
LEGAL_GROUNDS = frozenset({"law_requires", "national_security", "public_security", "emergency"})
HIGH_STAKES = frozenset({"social_assistance", "real_estate_disposal"})
BUSINESS_SECTORS = frozenset({"hotel", "bank", "station", "airport", "stadium", "exhibition_hall", "museum", "art_gallery", "library"})
IDENTITY_CHECK = frozenset({"verify", "identify", "enroll"})
OUTSIDE_MAINLAND = frozenset({"CN-HK", "CN-MO", "CN-TW", "CN-91", "CN-92", "CN-71"})
_EMPTY: Mapping[str, Any] = {}
_MISSING = object()


def decide(r: Mapping[str, Any]) -> tuple[str, list[str]]:
    op = r["operation"]
    purpose = r["purpose"]
    actor = r.get("actor", _EMPTY)
    place = r.get("place", _EMPTY)
    capture = r.get("capture", _EMPTY)
    subject = r.get("subject", _EMPTY)
    consent = r.get("consent", _EMPTY)
    basis = r.get("legal_basis", _EMPTY)
    place_type = place.get("type")
    sector = actor.get("sector")
    ground = basis.get("ground")

    processes = op != "erase"
    juris = r.get("jurisdiction")
    in_prc = juris is not None and (juris == "CN" or (juris.startswith("CN-") and juris not in OUTSIDE_MAINLAND))
    consent_in_force = (
        consent.get("type") in ("separate", "written")
        and "given_by" in consent
        and not consent.get("withdrawn", False)
        and purpose in consent.get("purposes", ())
    )
    separate_consent = consent_in_force and consent["type"] == "separate"
    guardian_consent = consent_in_force and consent["given_by"] == "guardian"
    cited = bool(basis.get("citation"))
    legal_ground_cited = ground in LEGAL_GROUNDS and cited
    law_requires_face = ground == "law_requires" and cited
    security_or_emergency = ground in SECURITY_EMERGENCY
    public_place = place_type == "public_place" or place.get("open_to_public", False) is True
    business_premises = place_type == "business_premises" or (place_type == "public_place" and sector in BUSINESS_SECTORS)
    identity_check = op in IDENTITY_CHECK
    property_entry = (
        actor.get("role") == "property_manager" or place_type == "property_management_area" or sector == "residential_property"
    )
    alternative = r.get("alternative", _EMPTY).get("offered", False) is True
    declined = subject.get("declined_face", False) is True
    pia = actor.get("pia", _EMPTY)
    age = subject.get("age")

    deny: list[str] = []
    if not in_prc:
        deny.append("cn23-02-outside-prc")
    if processes:
        if purpose == "other":
            deny.append("cn23-04-specific-purpose")
        if place_type is None or place_type == "private_space":
            deny.append("cn23-06-private-space")
        if public_place:
            if purpose != "public_security" and not separate_consent:
                deny.append("cn23-07-public-security-only")
            if place.get("signage", False) is not True:
                deny.append("cn23-07-signage")
        if r.get("storage", _EMPTY).get("raw_image") == "retain" and not (separate_consent or legal_ground_cited):
            deny.append("cn23-11-no-raw-image-retention")
        if age is not None:
            if age < MINOR_AGE and not guardian_consent:
                deny.append("cn23-16-guardian-consent")
        elif sector == "school" and not guardian_consent:
            deny.append("cn23-16-age-unknown-school")
        if pia.get("completed", False) is not True:
            deny.append("cn23-17-pia-required")
        elif pia.get("covers_purpose", False) is not True:
            deny.append("cn23-17-pia-covers-purpose")
    if business_premises and identity_check and not law_requires_face:
        if declined:
            deny.append("cn23-09-declined-not-forced")
        if not alternative and capture.get("mode") != "remote_passive":
            deny.append("cn23-09-alternative-required")
    if op == "verify" and not law_requires_face:
        if capture.get("mode") != "cooperative":
            deny.append("cn23-10-active-participation")
        if capture.get("purpose_prompt_shown", False) is not True:
            deny.append("cn23-10-purpose-prompt")
    if property_entry and identity_check:
        if not alternative:
            deny.append("cn23-12-not-only-way-in")
        if declined:
            deny.append("cn23-12-declined-face")
    if op in ("identify", "verify") and (public_place or place_type == "business_premises"):
        mode = capture.get("mode", _MISSING)
        if mode is _MISSING or (
            mode == "remote_passive"
            and not (security_or_emergency and capture.get("initiated_by") in ("subject", "interested_party"))
        ):
            deny.append("cn23-13-remote-identification")
    if op == "analyze":
        attributes = r.get("attributes", _MISSING)
        if attributes is _MISSING or (
            not SENSITIVE.isdisjoint(attributes) and not (security_or_emergency or separate_consent)
        ):
            deny.append("cn23-14-sensitive-attributes")
    if op in ("verify", "identify") and purpose in HIGH_STAKES and r.get("review", _EMPTY).get("human_review", False) is not True:
        deny.append("cn23-15-human-review-required")
    if deny:
        return "deny", deny

    permit: list[str] = []
    if processes:
        if consent_in_force:
            permit.append("cn23-05-consent")
        if legal_ground_cited:
            permit.append("cn23-05-law-dispenses-with-consent")
    elif op == "erase":
        permit.append("cn23-05-erasure")
    return ("permit", permit) if permit else ("deny", [])

