"""Composition: several packs in one deployment, each deciding what its `governs:` block covers."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import pytest

from facegate import Gate, PolicyError, load_policy
from facegate._cases import load_cases
from facegate._compose import NO_GOVERNING_PACK, Composition, Governs, load_composition, load_configured
from facegate._config import read_config
from facegate._plugins import load_registry
from facegate.testing import MemoryAudit, fake_info, fake_plugin
from fg_paths import ROOT

PACKS = [ROOT / "policies" / name for name in ("cn-cac-2023-draft", "cn-cac-2025", "eu-ai-act-art5", "us-il-bipa")]
CN25_BASELINE = ROOT / "policies" / "cn-cac-2025" / "cases" / "cn25-02-04-scope-purpose.yaml"


@pytest.fixture(scope="module")
def composed() -> Composition:
    return load_composition(PACKS)


@pytest.fixture(scope="module")
def alone() -> dict[str, object]:
    return {p.name: load_policy(p) for p in PACKS}


def _at(case: dict) -> dt.datetime | None:
    if "at" not in case:
        return None
    moment = dt.datetime.fromisoformat(case["at"])
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _baseline() -> dict:
    cases, _ = zip(*[(c, f) for c, f, _ in load_cases(ROOT / "policies" / "cn-cac-2025")], strict=True)
    return copy.deepcopy(next(c for c in cases if c["id"] == "baseline-kiosk-payment-separate-consent"))


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_composed_deployment_decides_each_pack_case_like_the_pack_alone(pack, composed, alone):
    """Where only this pack governs, the four-pack deployment decides exactly as the pack alone;
    and no case of the pack is governed by another pack as well (the packs' scopes are disjoint)."""
    policy = alone[pack.name]
    index = [p.id for p in composed.policies].index(policy.id)
    governs = composed.governs[index]
    # a case that states no date is decided on the first day of the pack's first period in force
    # (the 2023 draft governs only until 31 May 2025; "today" it governs nothing)
    first_day = dt.datetime.fromisoformat(governs.in_force[0][0]).replace(tzinfo=dt.UTC)
    compared = 0
    for case, _, _ in load_cases(pack):
        request, at = case["request"], _at(case)
        if at is None and "time" not in request:
            at = first_day
        governing = [p.id for p in composed.governing(request, at=at)]
        day = (at or dt.datetime.now(dt.UTC)).date().isoformat() if "time" not in request else request["time"][:10]
        if governs.why_not(request, day) is not None:
            assert policy.id not in governing
            continue  # the pack itself does not govern this case (outside its territory, dates or purposes)
        assert governing == [policy.id], f"{case['id']}: also governed by {governing}"
        by_itself = policy.decide(request, at=at)
        together = composed.decide(request, at=at)
        assert together.effect == by_itself.effect, case["id"]
        assert [d["rule"] for d in together.determining] == [d["rule"] for d in by_itself.determining], case["id"]
        assert {d["pack"] for d in together.determining} <= {policy.id}
        assert [e["rule"] for e in together.errors] == [e["rule"] for e in by_itself.errors], case["id"]
        assert [o["type"] for o in together.obligations] == [o["type"] for o in by_itself.obligations], case["id"]
        assert [w["rule"] for w in together.warnings] == [w["rule"] for w in by_itself.warnings], case["id"]
        part = next(p for p in together.packs if p["pack"] == policy.id)
        assert part["governs"] and part["decision"] == by_itself.effect and part["revision"] == policy.revision
        assert [d["provision"] for d in part["determining"]] == [d["provision"] for d in by_itself.determining]
        compared += 1
    assert compared >= 30, f"only {compared} cases of {policy.id} compared"


def test_dates_decide_which_chinese_instrument_governs(composed):
    request = _baseline()["request"]
    request["time"] = "2025-05-31T23:00:00+08:00"
    assert [p.id for p in composed.governing(request)] == ["cn-cac-2023-draft"]
    request["time"] = "2025-06-01T00:00:00+08:00"
    assert [p.id for p in composed.governing(request)] == ["cn-cac-2025"]
    request["time"] = "2023-08-07T12:00:00+08:00"
    decision = composed.decide(request)
    assert decision.effect == "deny" and decision.reason == NO_GOVERNING_PACK
    assert {p["pack"]: p["reason"] for p in decision.packs}["cn-cac-2025"] == "not_in_force_on:2023-08-07"


def test_without_a_stated_time_the_decision_time_dates_the_request(composed):
    request = _baseline()["request"]
    del request["time"]
    early = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    assert [p.id for p in composed.governing(request, at=early)] == ["cn-cac-2023-draft"]


def test_no_governing_pack_is_denied_and_lists_why_each_pack_stood_aside(composed):
    request = {"operation": "detect", "purpose": "other", "jurisdiction": "JP", "time": "2026-01-05T10:00:00+09:00"}
    decision = composed.decide(request)
    assert (decision.effect, decision.reason, decision.determining) == ("deny", NO_GOVERNING_PACK, ())
    reasons = {p["pack"]: p["reason"] for p in decision.packs}
    assert reasons == {
        "cn-cac-2023-draft": "not_in_force_on:2026-01-05",
        "cn-cac-2025": "outside_jurisdiction:JP",
        "eu-ai-act-art5": "outside_jurisdiction:JP",
        "us-il-bipa": "outside_jurisdiction:JP",
    }
    assert all(not p["governs"] for p in decision.packs)
    no_place = composed.decide({"operation": "detect", "purpose": "other"})
    assert no_place.reason == NO_GOVERNING_PACK
    assert {p["reason"] for p in no_place.packs if p["pack"] != "cn-cac-2023-draft"} == {"jurisdiction_not_stated"}


def test_ungoverned_requests_are_permitted_only_when_the_configuration_says_so(alone):
    open_config = Composition(list(alone.values()), ungoverned="permit")
    decision = open_config.decide({"operation": "detect", "purpose": "other", "jurisdiction": "JP"})
    assert (decision.effect, decision.reason, decision.obligations) == ("permit", "ungoverned_permitted", ())
    assert decision.warnings and "no loaded pack governs" in decision.warnings[0]["message"]["en"]
    # a governed request is decided as always: ungoverned=permit lifts nothing
    governed = {**_baseline()["request"], "cn": {}}
    assert open_config.decide(governed).effect == "deny"
    with pytest.raises(ValueError, match="ungoverned must be one of"):
        Composition(list(alone.values()), ungoverned="allow")


def test_excluded_purpose_takes_the_pack_out_and_carries_its_warning(composed):
    request = _baseline()["request"]
    request["purpose"] = "algorithm_training"
    request["consent"]["purposes"] = ["algorithm_training"]
    decision = composed.decide(request)
    assert decision.reason == NO_GOVERNING_PACK
    cn25 = next(p for p in decision.packs if p["pack"] == "cn-cac-2025")
    assert cn25 == {**cn25, "governs": False, "reason": "excluded_purpose:algorithm_training"}
    assert any("PIPL" in w["message"]["en"] for w in decision.warnings)


def test_territory_country_covers_subdivisions_and_exclusions_win():
    g = Governs(jurisdictions=("CN", "US-IL"), excluded_jurisdictions=("CN-HK",))
    day = "2026-01-01"
    assert g.why_not({"jurisdiction": "CN-31"}, day) is None
    assert g.why_not({"jurisdiction": "US-IL"}, day) is None
    assert g.why_not({"jurisdiction": "US-CA"}, day) == "outside_jurisdiction:US-CA"
    assert g.why_not({"jurisdiction": "US"}, day) == "outside_jurisdiction:US"  # a state does not cover its country
    assert g.why_not({"jurisdiction": "CN-HK"}, day) == "excluded_jurisdiction:CN-HK"
    assert g.why_not({"jurisdiction": "CNX"}, day) == "outside_jurisdiction:CNX"


def _tiny_pack(root: Path, *, forbid_identify: bool, fact_type: str = "boolean") -> Path:
    root.mkdir(parents=True)
    (root / "pack.yaml").write_text(f"""format: facegate/policy/v2
pack:
  id: {root.name}
  title: a test pack that governs mainland China
  jurisdiction: CN
  instrument: {{title: {{en: test instrument}}, status: draft}}
  version: 1.0.0
  valid_from: 2020-01-01
facts:
  cn_extra:
    type: {fact_type}
    description: {{en: a test fact}}
governs:
  jurisdictions: [CN]
  in_force: [{{from: 2020-01-01}}]
rules:
  - id: anything-goes
    provision: T-1
    article: {{number: "1", verified: true}}
    text: {{en: everything is allowed, grade: A}}
    effect: permit
    when: "true"
    obligations: [{{type: retention_max_days, days: 7}}]
    message: {{en: allowed}}
    review: {{status: draft}}
  - id: no-identify
    provision: T-2
    article: {{number: "2", verified: true}}
    text: {{en: identification is forbidden, grade: A}}
    effect: forbid
    when: request.operation == "identify" && {str(forbid_identify).lower()}
    message: {{en: no identification}}
    review: {{status: draft}}
""")
    return root


def test_a_deny_from_any_governing_pack_overrides_and_every_result_is_listed(tmp_path):
    tiny = _tiny_pack(tmp_path / "tiny-cn", forbid_identify=True)
    composition = load_composition([PACKS[1], tiny])
    case = _baseline()
    request, at = case["request"], _at(case)
    both = composition.decide(request, at=at)
    assert both.effect == "permit"
    assert {d["pack"] for d in both.determining} == {"cn-cac-2025", "tiny-cn"}
    retention = next(o for o in both.obligations if o["type"] == "retention_max_days")
    assert retention["days"] == 7 and retention["sources"] == [{"rule": "anything-goes", "provision": "T-1", "pack": "tiny-cn"}]
    request["operation"] = "identify"
    denied = composition.decide(request, at=at)
    assert denied.effect == "deny" and [(d["pack"], d["rule"]) for d in denied.determining] == [("tiny-cn", "no-identify")]
    parts = {p["pack"]: p for p in denied.packs}
    assert parts["cn-cac-2025"]["decision"] == "permit" and parts["tiny-cn"]["decision"] == "deny"
    assert parts["tiny-cn"]["determining"] == [{"rule": "no-identify", "provision": "T-2", "article": "2", "grade": "A"}]
    assert denied.policy["id"] == "cn-cac-2025+tiny-cn"
    assert json.loads(json.dumps(denied.to_dict()))["packs"][1]["reason"] == "forbidden"


def test_packs_are_loaded_together_and_conflicting_facts_name_both(tmp_path):
    first = _tiny_pack(tmp_path / "first", forbid_identify=False)
    second = _tiny_pack(tmp_path / "second", forbid_identify=False, fact_type="string")
    with pytest.raises(PolicyError) as info:
        load_composition([first, second])
    text = str(info.value)
    assert "cn_extra" in text and "first" in text and "second" in text
    # each pack's contract carries the other packs' facts: a BIPA fact is valid for the EU pack
    eu = load_composition([PACKS[2], PACKS[3]]).policies[0]
    request = {"operation": "detect", "purpose": "other", "jurisdiction": "DE", "bipa": {"private_entity": True}}
    assert eu.decide(request).reason != "invalid_request"
    assert load_policy(PACKS[2]).decide(request).reason == "invalid_request"


def test_an_invalid_request_for_a_governing_pack_is_denied(composed):
    request = {**_baseline()["request"], "cn": {"no_such_fact": True}}
    decision = composed.decide(request)
    assert decision.effect == "deny" and decision.reason == "invalid_request" and decision.violations
    assert composed.decide(["not", "a", "request"]).reason == "invalid_request"


def test_a_pack_listed_twice_is_refused(alone):
    policy = alone["us-il-bipa"]
    with pytest.raises(ValueError, match="listed twice"):
        Composition([policy, policy])


def test_the_configuration_lists_packs_and_the_gate_audits_every_part(tmp_path):
    config_file = tmp_path / "deployment.yaml"
    config_file.write_text(
        "policy:\n" + "".join(f"  - {p}\n" for p in PACKS[2:])
        + "composition: {ungoverned: deny}\nrecognizer: {id: fake}\n"
    )
    config, base = read_config(config_file)
    composition = load_configured(config, base)
    assert isinstance(composition, Composition) and [p.id for p in composition.policies] == ["eu-ai-act-art5", "us-il-bipa"]
    single = load_configured({"policy": str(PACKS[3]), "recognizer": {"id": "fake"}}, base)
    assert not isinstance(single, Composition)
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    audit = MemoryAudit()
    gate = Gate(composition, "fake", registry=registry, audit=audit)
    outcome = gate.process({"operation": "sell", "purpose": "marketing", "jurisdiction": "US-IL", "time": "2025-06-02T09:00:00-05:00"})
    assert outcome.status == "denied" and outcome.decision.reason == "forbidden"
    record = next(r for r in audit.records if r["kind"] == "decision")
    assert [(p["pack"], p["governs"]) for p in record["packs"]] == [("eu-ai-act-art5", False), ("us-il-bipa", True)]
    assert "BIPA-15-c" in [d["provision"] for d in record["packs"][1]["determining"]]


def test_the_configuration_schema_refuses_a_bad_policy_list(tmp_path):
    from facegate import ConfigError

    with pytest.raises(ConfigError):
        read_config({"policy": [], "recognizer": {"id": "fake"}})
    with pytest.raises(ConfigError):
        read_config({"policy": ["a"], "composition": {"ungoverned": "maybe"}, "recognizer": {"id": "fake"}})


def test_the_service_runs_a_composed_deployment(tmp_path):
    from facegate.service import _openapi, _runtime

    config = tmp_path / "facegate.yaml"
    config.write_text("policy:\n" + "".join(f"  - {p}\n" for p in PACKS[1:])
                      + "recognizer: {id: onnx}\nplugins: {allow: [onnx]}\nstore: {path: facegate.db}\n")
    runtime = _runtime.build(config)
    try:
        assert [p["id"] for p in runtime.packs()] == ["cn-cac-2025", "eu-ai-act-art5", "us-il-bipa"]
        assert runtime.revision == runtime.gate.policy.revision
        request = _openapi.build(runtime.gate.policy.request_schema)["components"]["schemas"]["Request"]
        assert {"cn", "eu", "bipa"} <= set(request["properties"])
    finally:
        runtime.store.close()


def test_a_composed_deny_names_the_unmet_permits_of_the_denying_packs(composed):
    request = _baseline()["request"]
    del request["consent"]
    del request["cn"]["legal_basis"]
    decision = composed.decide(request)
    assert decision.reason == "no_permit"
    assert decision.unmet and {u["pack"] for u in decision.unmet} == {"cn-cac-2025"}
    assert "cn25-06-separate-consent" in [u["rule"] for u in decision.unmet]
