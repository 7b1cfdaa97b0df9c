"""The CAC 2023 draft pack: its cases pass with full coverage, and its law holds for random requests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import facegate
from facegate._cases import Report, load_cases, run_pack_tests
from facegate._schema import load_schema

PACK = Path(__file__).resolve().parent.parent / "policies" / "cn-cac-2023-draft"
REQUEST_SCHEMA = load_schema("request.v1.json")
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INSTRUMENT = {f"CN23-{n:02d}" for n in range(1, 21)} | {"CN23-21-25"}
NOT_ENFORCEABLE = {"CN23-01", "CN23-03", "CN23-18", "CN23-19", "CN23-21-25"}
SENSITIVE = ["race", "ethnicity", "religion", "health", "social_class"]


@pytest.fixture(scope="module")
def cac() -> facegate.Policy:
    return facegate.load_policy(PACK)


@pytest.fixture(scope="module")
def report(cac: facegate.Policy) -> Report:
    return run_pack_tests(cac)


_POLICY = facegate.load_policy(PACK)


# ------------------------------------------------------------------------------------------------
# the case files


def test_all_cases_pass_with_full_provision_coverage(report: Report) -> None:
    failures = {r.id: r.failures for r in report.results if not r.passed}
    assert not failures
    gaps = [c.provision for c in report.coverage if not c.covered]
    assert not gaps
    assert report.coverage_percent == 100.0 and report.passed
    assert len(report.results) >= 80


def test_the_everyday_scenarios_are_decided_as_the_news_reader_expects(cac: facegate.Policy) -> None:
    expected = {
        "toilet-paper-dispenser-in-public-toilet": ("deny", "CN23-06"),
        "bank-verifies-customer-with-separate-consent": ("permit", "CN23-05"),
        "shop-infers-customers-ethnicity": ("deny", "CN23-14"),
        "residential-compound-face-scan-only-way-in": ("deny", "CN23-12"),
        "child-face-enrolled-without-guardian": ("deny", "CN23-16"),
    }
    cases = {c["id"]: c for c, _, _ in load_cases(PACK)}
    for case_id, (effect, provision) in expected.items():
        decision = cac.decide(cases[case_id]["request"])
        assert decision.effect == effect, case_id
        assert [d["provision"] for d in decision.determining] == [provision], case_id


def test_every_enforceable_provision_has_a_case_for_each_side(report: Report) -> None:
    for c in report.coverage:
        if c.enforceable:
            assert c.decisive_cases and c.boundary_cases, c.provision


# ------------------------------------------------------------------------------------------------
# the pack as a document


def test_every_provision_of_the_instrument_is_accounted_for(cac: facegate.Policy) -> None:
    provisions = {p.provision: p for p in cac.pack.provisions}
    assert set(provisions) == INSTRUMENT
    assert {p for p, v in provisions.items() if not v.enforceable} == NOT_ENFORCEABLE
    for pid in NOT_ENFORCEABLE:
        assert provisions[pid].reason, pid


def test_metadata_says_draft_and_not_reviewed(cac: facegate.Policy) -> None:
    meta = cac.pack.meta
    inst = meta["instrument"]
    assert inst["status"] == "draft" and inst["issued"] == "2023-08-08"
    assert inst["title"]["zh"] == "人脸识别技术应用安全管理规定（试行）（征求意见稿）"
    assert inst["url"] == "http://www.cac.gov.cn/2023-08/08/c_1693064670537413.htm"
    assert "NOT REVIEWED BY A LAWYER" in meta["review_notice"]["en"] and "未经律师审阅" in meta["review_notice"]["zh"]


def test_thresholds_are_parameters_with_their_legal_reference(cac: facegate.Policy) -> None:
    docs = cac.pack.parameter_docs
    assert cac.pack.parameters["minor_age"] == 14 and docs["minor_age"]["reference"]["provision"] == "CN23-16"
    assert cac.pack.parameters["filing_threshold_persons"] == 10000
    assert docs["filing_threshold_persons"]["reference"]["provision"] == "CN23-20"
    assert "more than" in docs["filing_threshold_persons"]["description"].lower()
    assert cac.pack.parameters["sensitive_attributes"] == SENSITIVE


def test_every_rule_is_bilingual_graded_and_unreviewed(cac: facegate.Policy) -> None:
    for rule in cac.rules:
        assert rule.review["status"] == "draft", rule.id
        assert rule.message_en and rule.message_zh, rule.id
        assert rule.text.get("zh") and rule.text.get("en") and rule.text.get("grade"), rule.id
        assert rule.article_verified == (rule.provision in {"CN23-01", "CN23-02", "CN23-03", "CN23-04"}), rule.id


def _request_paths(schema: dict[str, Any], prefix: str = "request") -> set[str]:
    paths = {prefix}
    for name, sub in schema.get("properties", {}).items():
        paths |= _request_paths(sub, f"{prefix}.{name}")
    return paths


def test_conditions_name_only_fields_of_the_request_contract(cac: facegate.Policy) -> None:
    """The interpreter does not type-check: a misspelt field would silently never match."""
    known = _request_paths(REQUEST_SCHEMA)
    texts = [c.text for r in cac.rules for c in (*r.when, *r.unless)] + [v["expression"] for v in cac.pack.variables]
    texts += [r.message_expr.text for r in cac.rules if r.message_expr]
    found = [m for t in texts for m in re.findall(r"(\brequest(?:\.[A-Za-z_]\w*)+)(\(?)", t)]
    used = {path.rsplit(".", 1)[0] if call else path for path, call in found}  # x.y.exists(...) names x.y
    assert used and used <= known, sorted(used - known)


def _param_schema(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, list):
        return {"type": "array", "items": {"type": "string"}}
    return {"type": "string"}


def test_the_pack_decides_every_case_alike_under_the_reference_interpreter() -> None:
    """Guards follow the CEL spec (`has(a.b)` errors when `a` is absent) under both backends."""
    report = run_pack_tests(facegate.load_policy(PACK, backend="interpreter"))
    assert report.passed, [(r.id, r.failures) for r in report.results if not r.passed]


# ------------------------------------------------------------------------------------------------
# boundaries, stated directly

BANK: dict[str, Any] = {
    "operation": "verify", "purpose": "identity_verification", "jurisdiction": "CN",
    "actor": {"role": "business_premises", "sector": "bank", "stored_persons": 8200, "filing": "none", "pia": {"completed": True, "covers_purpose": True}},
    "place": {"type": "business_premises", "signage": True},
    "capture": {"mode": "cooperative", "purpose_prompt_shown": True, "initiated_by": "subject"},
    "subject": {"age": 42, "declined_face": False},
    "consent": {"type": "separate", "given_by": "subject", "purposes": ["identity_verification"], "withdrawn": False},
    "legal_basis": {"ground": "none"},
    "alternative": {"offered": True},
    "storage": {"raw_image": "discard"},
}


def _with(base: dict[str, Any], **nested: Any) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in nested.items():
        head, _, tail = key.partition("__")
        if tail:
            out[head] = {**out.get(head, {}), tail: value}
        else:
            out[head] = value
    return out


@pytest.mark.parametrize(("age", "effect"), [(13, "deny"), (14, "permit")])
def test_minor_age_boundary(cac: facegate.Policy, age: int, effect: str) -> None:
    assert cac.decide(_with(BANK, subject__age=age)).effect == effect


@pytest.mark.parametrize(("stored", "duty"), [(10000, False), (10001, True)])
def test_filing_threshold_is_strictly_more_than_10000(cac: facegate.Policy, stored: int, duty: bool) -> None:
    decision = cac.decide(_with(BANK, actor__stored_persons=stored))
    assert decision.effect == "permit"
    assert ("file_with_regulator" in [o["type"] for o in decision.obligations]) is duty


@pytest.mark.parametrize(("consent", "effect"), [("separate", "permit"), ("written", "permit"), ("bundled", "deny"), ("none", "deny")])
def test_consent_kinds(cac: facegate.Policy, consent: str, effect: str) -> None:
    assert cac.decide(_with(BANK, consent__type=consent)).effect == effect


# ------------------------------------------------------------------------------------------------
# properties over random requests


def _from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 20000)
        return st.one_of(st.sampled_from([v for v in (0, 13, 14, 10000, 10001) if lo <= v <= hi]), st.integers(lo, hi))
    if kind == "string":
        return st.sampled_from(["CN", "CN-SH", "HK"]) if "pattern" in schema else st.sampled_from(["", "PIPL Art. 13(4)"])
    if kind == "array":
        return st.lists(_from_schema(schema["items"]), max_size=4, unique=True)
    props = {k: v for k, v in schema.get("properties", {}).items() if k != "$schema"}
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {k: _from_schema(v) for k, v in props.items() if k in required},
        optional={k: _from_schema(v) for k, v in props.items() if k not in required},
    )


_DROP = object()
STATION: dict[str, Any] = _with(BANK, consent={"type": "none"}, actor__sector="station",
                                legal_basis={"ground": "law_requires", "citation": "Counter-Terrorism Law Art. 21"})


def _near(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A complete request with a few top-level facts replaced at random or dropped: close to the permit boundary."""
    fields = {k: v for k, v in REQUEST_SCHEMA["properties"].items() if k != "$schema"}
    changes = st.fixed_dictionaries({}, optional={k: st.one_of(st.just(_DROP), _from_schema(v)) for k, v in fields.items()})

    def apply(change: dict[str, Any]) -> dict[str, Any]:
        out = {**base, **{k: v for k, v in change.items() if v is not _DROP}}
        out = {k: v for k, v in out.items() if change.get(k) is not _DROP}
        out.setdefault("operation", base["operation"])
        out.setdefault("purpose", base["purpose"])
        return out

    return changes.map(apply)


REQUESTS = st.one_of(_from_schema(REQUEST_SCHEMA), _near(BANK), _near(STATION))


def _valid_consent(req: dict[str, Any], types: tuple[str, ...], by: tuple[str, ...] = ("subject", "guardian")) -> bool:
    c = req.get("consent", {})
    return (c.get("type") in types and c.get("given_by") in by and not c.get("withdrawn", False)
            and req["purpose"] in c.get("purposes", []))


def _ground(req: dict[str, Any]) -> str | None:
    ground: str | None = req.get("legal_basis", {}).get("ground")
    return ground


@PROPERTY
@given(REQUESTS, st.lists(st.sampled_from(SENSITIVE), min_size=1, max_size=3, unique=True))
def test_sensitive_analysis_without_separate_consent_or_exception_is_denied(req: dict[str, Any], sensitive: list[str]) -> None:
    req = {**req, "operation": "analyze", "attributes": sorted(set(req.get("attributes", [])) | set(sensitive))}
    if _valid_consent(req, ("separate",)):
        req["consent"] = {**req["consent"], "type": "bundled"}
    if _ground(req) in ("national_security", "public_security", "emergency"):
        req["legal_basis"] = {**req["legal_basis"], "ground": "none"}
    decision = _POLICY.decide(req)
    assert decision.effect == "deny"
    assert "CN23-14" in {d["provision"] for d in decision.determining} or decision.reason in ("no_permit", "invalid_request")


@PROPERTY
@given(REQUESTS, st.integers(0, 13))
def test_a_child_without_guardian_consent_is_never_processed(req: dict[str, Any], age: int) -> None:
    req = {**req, "subject": {**req.get("subject", {}), "age": age}}
    if req["operation"] == "erase":
        req["operation"] = "enroll"
    if _valid_consent(req, ("separate", "written"), ("guardian",)):
        req["consent"] = {**req["consent"], "given_by": "subject"}
    assert _POLICY.decide(req).effect == "deny"


@PROPERTY
@given(REQUESTS, st.sampled_from(["hotel_room", "public_bath", "changing_room", "toilet", "other"]))
def test_nothing_but_erasure_happens_in_a_private_space(req: dict[str, Any], kind: str) -> None:
    req = {**req, "place": {**req.get("place", {}), "type": "private_space", "private_kind": kind}}
    decision = _POLICY.decide(req)
    if req["operation"] != "erase":
        assert decision.effect == "deny"


@PROPERTY
@given(REQUESTS)
def test_no_permit_without_consent_a_cited_ground_or_erasure(req: dict[str, Any]) -> None:
    decision = _POLICY.decide(req)
    if decision.effect != "permit":
        return
    cited = _ground(req) not in (None, "none") and bool(req.get("legal_basis", {}).get("citation"))
    assert req["operation"] == "erase" or cited or _valid_consent(req, ("separate", "written"))
    assert req.get("jurisdiction") in ("CN", "CN-SH")
    if req["operation"] != "erase":
        assert req["actor"]["pia"]["completed"] is True and req["actor"]["pia"]["covers_purpose"] is True
        assert req["place"]["type"] != "private_space"
        assert any(o["type"] == "record_processing" for o in decision.obligations)


@PROPERTY
@given(REQUESTS)
def test_removing_consent_never_turns_a_deny_into_a_permit(req: dict[str, Any]) -> None:
    if _POLICY.decide(req).effect == "deny":
        stripped = {k: v for k, v in req.items() if k != "consent"}
        assert _POLICY.decide(stripped).effect == "deny"
