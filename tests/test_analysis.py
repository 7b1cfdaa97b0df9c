"""The SMT translation agrees with the engine; analyze, prove, properties, diff and replay."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pytest
import z3  # the test extra installs z3-solver (facegate[analysis])
from hypothesis import HealthCheck, given, settings

import facegate
from facegate._cases import load_cases
from facegate.analysis._analyze import analyze
from facegate.analysis._diff import decision_change, diff
from facegate.analysis._model import PolicyModel
from facegate.analysis._properties import run_properties
from facegate.analysis._prove import prove
from facegate.analysis._replay import replay, replay_records
from facegate.analysis._variants import pins
from facegate.cli import main
from fg_paths import EXAMPLE
from strategies import requests

CAC = Path(__file__).resolve().parents[1] / "policies" / "cn-cac-2023-draft"
DAY = "2026-01-15"
AT = _dt.datetime.fromisoformat(DAY + "T12:00:00+00:00")


@pytest.fixture(scope="module")
def cac():
    return facegate.load_policy(CAC)


@pytest.fixture(scope="module")
def cac_model(cac):
    return PolicyModel(cac, day=DAY)


def _outcomes_agree(policy, model, request):
    """Pin the symbolic request to ``request``: every rule outcome and the effect must equal the engine's."""
    decision = policy.decide(request, at=AT)
    if decision.violations:
        return
    solver = z3.Solver()
    solver.add(model.valid(), *pins(model, request, free_actionable=False))
    assert solver.check() == z3.sat, request
    m = solver.model()
    for rid, rm in model.rules.items():
        if not rm.analysable:
            continue  # free outcome: the solver may pick any (reported as not analysable)
        applied = z3.is_true(m.eval(rm.applied, model_completion=True))
        error = z3.is_true(m.eval(rm.error, model_completion=True))
        symbolic = "applied" if applied else "error" if error else "skipped" if rm.skipped else "not_applicable"
        assert symbolic == decision.rules[rid], (rid, request)
    if not model.not_analysable:
        assert z3.is_true(m.eval(model.permit, model_completion=True)) == decision.permitted


def test_translation_agrees_with_the_engine_on_every_cac_case(cac, cac_model):
    cases = load_cases(CAC)
    assert len(cases) > 80
    for case, _, _ in cases:
        _outcomes_agree(cac, cac_model, case["request"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_translation_agrees_with_the_engine_on_random_requests(cac, cac_model, request):
    _outcomes_agree(cac, cac_model, request)


def test_every_cac_rule_translates(cac_model):
    assert cac_model.not_analysable == []


PACKS = sorted(p.parent.name for p in (CAC.parent).glob("*/pack.yaml"))


@pytest.mark.parametrize("name", PACKS)
def test_translation_agrees_with_the_engine_on_every_shipped_pack(name):
    """Each pack's own cases, and random requests drawn from its own request contract."""
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    from strategies import _from_schema

    policy = facegate.load_policy(CAC.parent / name)
    model = PolicyModel(policy, day=DAY)
    cases = load_cases(CAC.parent / name)
    for case, _, _ in cases:
        _outcomes_agree(policy, model, case["request"])
    schema = getattr(policy, "request_schema", None)
    if schema is None:
        return
    seen = []

    def disagrees(request):
        seen.append(request)
        try:
            _outcomes_agree(policy, model, request)
        except AssertionError:
            return True
        return False

    with pytest.raises(NoSuchExample):  # no request among 60 random ones where solver and engine differ
        find(_from_schema(schema, False), disagrees, settings=settings(max_examples=60, database=None, deadline=None))


# -- prove


def test_a_property_of_the_pack_is_proved(cac, cac_model):
    r = prove(cac, '!(decision.permitted && has(request.place) && has(request.place.type) && request.place.type == "private_space") || request.operation == "erase"', model=cac_model)
    assert r.status == "proved"


def test_a_false_property_yields_a_counterexample_that_facegate_decide_reproduces(cac, tmp_path, capsys):
    prop = '!(decision.permitted && request.operation == "verify") || (has(request.consent) && request.consent.type == "separate")'
    out = tmp_path / "ce.json"
    assert main(["prove", str(CAC), prop, "--counterexample", str(out), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "counterexample"
    request = json.loads(out.read_text())
    assert request == result["counterexample"]
    assert main(["decide", "--policy", str(CAC), "--request", str(out), "--json"]) == 0
    decided = json.loads(capsys.readouterr().out)
    assert decided["decision"] == result["decision"]["effect"] == "permit"
    assert request["operation"] == "verify" and request.get("consent", {}).get("type") != "separate"  # the property is false here


def test_a_construct_outside_the_subset_is_unknown_never_proved(cac, cac_model):
    r = prove(cac, 'decision.permitted || {"a": 1}["a"] == 1', model=cac_model)
    assert r.status == "unknown" and "not analysable" in r.detail


def test_an_unanalysable_rule_gets_free_outcomes_and_is_reported(pack_copy):
    rules = pack_copy / "rules" / "rules.yaml"
    text = rules.read_text()
    text = text.replace('when: has(request.place) && has(request.place.type) && request.place.type == "private_space"',
                        "when: 'has(request.place) && has(request.place.type) && {\"private_space\": true}[request.place.type]'")
    rules.write_text(text)
    policy = facegate.load_policy(pack_copy)
    a = analyze(policy, day=DAY)
    assert [n["rule"] for n in a.not_analysable] == ["ex2-no-private-spaces"]
    assert "ex2-no-private-spaces" not in a.never_applies
    # the proof does not assume the untranslated forbid: with it free, a private-space permit cannot be ruled out
    r = prove(policy, '!(decision.permitted && has(request.place) && has(request.place.type) && request.place.type == "private_space")', day=DAY)
    assert r.status != "proved"


# -- analyze


def test_analyze_finds_dead_shadowed_overridden_rules_and_denied_operations(pack_copy):
    extra = """
  - id: ex9-dead
    provision: EX-1
    article: {number: "1", verified: true}
    text: {en: "x", zh: "x"}
    effect: permit
    when: ['request.operation == "verify"', 'request.operation == "detect"']
    message: {en: "dead", zh: "dead"}
    review: {status: draft}
  - id: ex9-narrow
    provision: EX-1
    article: {number: "1", verified: true}
    text: {en: "x", zh: "x"}
    effect: permit
    when: ['request.operation == "verify"', 'variables.has_consent', 'request.purpose == "payment"']
    message: {en: "narrow", zh: "narrow"}
    review: {status: draft}
  - id: ex9-overridden
    provision: EX-2
    article: {number: "2", verified: true}
    text: {en: "x", zh: "x"}
    effect: permit
    when: ['request.operation == "identify"', 'has(request.place) && has(request.place.type) && request.place.type == "private_space"']
    message: {en: "overridden", zh: "overridden"}
    review: {status: draft}
"""
    rules = pack_copy / "rules" / "rules.yaml"
    text = rules.read_text().replace("\nprovisions:", extra + "provisions:", 1)
    rules.write_text(text)
    a = analyze(facegate.load_policy(pack_copy), day=DAY)
    assert a.never_applies == ["ex9-dead"]
    assert {"rule": "ex9-narrow", "by": "ex1-verify-with-consent", "effect": "permit"} in a.shadowed
    assert [o["rule"] for o in a.overridden] == ["ex9-overridden"]
    assert a.always_denied == ["identify", "enroll", "analyze", "erase"]
    assert ("ex1-verify-with-consent", "ex2-no-private-spaces") in {(o["permit"], o["forbid"]) for o in a.overlaps}
    assert all(o["confirmed"] for o in a.overlaps)


def test_analyze_the_cac_pack(cac):
    a = analyze(cac, day=DAY)
    assert a.not_analysable == [] and a.unknown == []
    assert a.never_applies == [] and a.always_denied == []
    pairs = {(o["permit"], o["forbid"]) for o in a.overlaps}
    assert ("cn23-05-consent", "cn23-06-private-space") in pairs
    assert all(o["confirmed"] for o in a.overlaps)


def test_analyze_cli(capsys):
    assert main(["analyze", str(EXAMPLE), "--day", DAY]) == 0
    out = capsys.readouterr().out
    assert "operations always denied: 4" in out and "rules that can never apply: none" in out


# -- properties in the pack folder


@pytest.mark.parametrize("name", [p for p in PACKS if p != "example-facts"])  # example-facts: the authoring template
def test_shipped_packs_prove_their_properties(name):
    results = run_properties(facegate.load_policy(CAC.parent / name))
    assert sum(r.status == "proved" for r in results) >= 3
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]


def test_a_false_property_fails_facegate_test(pack_copy, capsys):
    (pack_copy / "properties.yaml").write_text(
        "format: facegate/properties/v1\nproperties:\n  - id: verify-always-permitted\n"
        "    property: '!(request.operation == \"verify\") || decision.permitted'\n")
    assert main(["test", str(pack_copy)]) == 1
    out = capsys.readouterr().out
    assert "FAIL verify-always-permitted" in out and "counterexample:" in out


def test_a_malformed_properties_file_is_a_load_error(pack_copy, capsys):
    (pack_copy / "properties.yaml").write_text("format: facegate/properties/v1\nproperties:\n  - id: x\n    propery: 'true'\n")
    assert main(["test", str(pack_copy)]) == 2
    assert "properties.yaml" in capsys.readouterr().err


# -- diff


def test_diff_lists_changes_and_a_request_decided_differently(pack_copy):
    pack = pack_copy / "pack.yaml"
    pack.write_text(pack.read_text().replace("value: 14", "value: 16"))
    rules = pack_copy / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace('message: {en: "display signage", zh: "设置显著提示标识"}',
                                               'message: {en: "display clear signage", zh: "设置显著提示标识"}'))
    old, new = facegate.load_policy(EXAMPLE), facegate.load_policy(pack_copy)
    d = diff(old, new)
    assert [c["id"] for c in d["parameters"]["changed"]] == ["minor_age"]
    changed = {c["id"]: c for c in d["rules"]["changed"]}
    assert changed["ex4-signage"]["fields"] == ["message_en"] and not changed["ex4-signage"]["decides"]
    change = decision_change(old, new, day=DAY)
    assert change["status"] == "differs"
    age = change["example"]["subject"]["age"]
    assert 14 <= age < 16
    assert old.decide(change["example"]).effect != new.decide(change["example"]).effect


def test_diff_of_a_pack_with_itself_is_proved_the_same(capsys):
    assert main(["diff", str(EXAMPLE), str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "every valid request gets the same effect" in out and "rules: unchanged" in out


# -- replay


def test_replay_tables_changed_decisions_by_provision(tmp_path, pack_copy, capsys):
    from facegate import Gate
    from facegate._plugins import load_registry
    from facegate.store import SQLiteStore
    from facegate.testing import fake_info, fake_plugin, synthetic_face_image

    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    db = tmp_path / "fg.db"
    consent = {"type": "separate", "given_by": "subject", "purposes": ["identity_verification"]}
    with SQLiteStore(db) as store:
        gate = Gate(facegate.load_policy(EXAMPLE), "fake", registry=registry, store=store)
        image = synthetic_face_image()
        for age in (10, 15, 15, 30):
            gate.process({"operation": "verify", "purpose": "identity_verification", "subject": {"id": f"p{age}", "age": age}, "consent": consent}, image)
        gate.process({"operation": "identify", "purpose": "identity_verification"}, image)
        gate.close()
    pack = pack_copy / "pack.yaml"
    pack.write_text(pack.read_text().replace("value: 14", "value: 16"))
    report = replay(str(db), facegate.load_policy(pack_copy))
    assert report.decided == 5 and report.changed == 2
    assert list(report.groups) == [("permit -> deny", "EX-3")]
    group = report.groups[("permit -> deny", "EX-3")]
    assert group["count"] == 2 and group["examples"][0]["request"]["subject"]["age"] == 15
    assert group["examples"][0]["request"]["subject"]["id"].startswith("hmac-sha256:")  # masked as the log keeps it
    assert main(["replay", "--db", str(db), "--policy", str(pack_copy), "--since", "2000-01-01"]) == 0
    assert "permit -> deny" in capsys.readouterr().out


def test_replay_skips_records_without_request_facts(example_policy):
    records = [{"kind": "outcome"}, {"kind": "decision", "request": {"invalid": "str"}, "effect": "deny"},
               {"kind": "decision", "request": {"operation": "verify", "purpose": "payment"}, "effect": "deny", "time": "2026-01-01T00:00:00+00:00"}]
    report = replay_records(records, example_policy)
    assert report.decided == 1 and report.skipped == 2 and report.changed == 0


def test_the_schema_pattern_translates_to_the_same_language():
    import re

    from facegate.analysis._smt import regex

    pattern = "^[A-Z]{2}(-[A-Z0-9]{1,3})?$"
    re_z3 = regex(pattern)
    for text in ("CN", "CN-HK", "CN-11", "US-CA1", "cn", "C", "CN-", "CN-ABCD", "CNX", "CN-HK-1", ""):
        s = z3.Solver()
        s.add(z3.InRe(z3.StringVal(text), re_z3))
        assert (s.check() == z3.sat) == bool(re.fullmatch(pattern[1:-1], text)), text
