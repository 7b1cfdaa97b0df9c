"""Decide phase: the combining table, fail-closed errors, modes, validity, explanations."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

import facegate
from facegate import _decide
from facegate._compile import EvalError
from fg_paths import EXAMPLE as EXAMPLE_DIR

BASE = {
    "operation": "verify",
    "purpose": "payment",
    "subject": {"age": 30},
    "consent": {"type": "separate", "given_by": "subject", "purposes": ["payment"]},
}


def _req(**over):
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    out.update(over)
    return out


def test_permit_with_consent_and_obligations(example_policy):
    d = example_policy.decide(_req())
    assert d.effect == "permit" and d.reason == "permitted"
    assert [x["rule"] for x in d.determining] == ["ex1-verify-with-consent"]
    assert {o["type"]: o for o in d.obligations}["retention_max_days"]["days"] == 30
    assert d.policy == {"id": "example-consent", "version": "1.0.0", "revision": example_policy.revision}


def test_default_deny_without_permit(example_policy):
    d = example_policy.decide(_req(consent={"type": "bundled", "purposes": ["payment"]}))
    assert d.effect == "deny" and d.reason == "no_permit" and d.determining == ()


def test_forbid_overrides_permit(example_policy):
    d = example_policy.decide(_req(place={"type": "private_space", "private_kind": "toilet"}))
    assert d.effect == "deny" and d.reason == "forbidden"
    assert [x["rule"] for x in d.determining] == ["ex2-no-private-spaces"]
    assert d.determining[0]["message"]["zh"] == "私密场所不得使用人脸识别"


def test_forbid_that_errors_applies_fail_closed(example_policy):
    req = _req()
    del req["subject"]
    d = example_policy.decide(req)
    assert d.effect == "deny"
    assert [e["rule"] for e in d.errors] == ["ex3-minor-needs-guardian"]
    assert "subject" in d.errors[0]["error"]


def test_unless_lifts_forbid(example_policy):
    d = example_policy.decide(_req(subject={"age": 13}, consent={"type": "written", "given_by": "guardian", "purposes": ["payment"]}))
    assert d.effect == "permit"
    d = example_policy.decide(_req(subject={"age": 13}))
    assert d.effect == "deny" and d.determining[0]["message"]["detail"] == "subject is 13"


def test_boundary_age_14_is_not_a_minor(example_policy):
    assert example_policy.decide(_req(subject={"age": 14})).effect == "permit"
    assert example_policy.decide(_req(subject={"age": 13})).effect == "deny"


def test_warn_mode_never_blocks_but_warns(example_policy):
    d = example_policy.decide(_req(consent={"type": "bundled", "purposes": ["payment"]}))
    assert [w["rule"] for w in d.warnings] == ["ex5-bundled-consent-warning"]
    assert all(x["rule"] != "ex5-bundled-consent-warning" for x in d.determining)


def test_invalid_request_is_denied_with_every_violation(example_policy):
    d = example_policy.decide({"operation": "verfy", "purpose": "payment", "consnet": {}})
    assert d.effect == "deny" and d.reason == "invalid_request"
    pointers = {v["pointer"] for v in d.violations}
    assert pointers == {"/operation", "/consnet"}
    assert any("did you mean `consent`" in v["message"] for v in d.violations)


@pytest.mark.parametrize("bad", [None, [], "verify", 3, {"operation": "verify"}, {"operation": "verify", "purpose": "payment", "subject": {"age": True}},
                                 {"operation": "verify", "purpose": "payment", "subject": {"age": dt.date(2020, 1, 1)}},
                                 {"operation": "verify", "purpose": "payment", "subject": {"age": 2**80}}])
def test_malformed_requests_never_raise_and_deny(example_policy, bad):
    d = example_policy.decide(bad)
    assert d.effect == "deny" and d.reason == "invalid_request" and d.violations


def test_explain_lists_condition_values_and_blocked_permits(example_policy):
    d = example_policy.decide(_req(consent={"type": "bundled", "purposes": ["payment"]}), explain=True)
    rules = d.explanation["rules"]
    assert rules["ex1-verify-with-consent"]["when"] == [
        {"condition": 'request.operation in ["detect", "verify"]', "value": True},
        {"condition": "variables.has_consent", "value": False},
    ]
    blocked = d.explanation["blocked_permits"]
    assert blocked == [{"rule": "ex1-verify-with-consent", "provision": "EX-1", "outcome": "not_applicable", "unmet": ["variables.has_consent"], "excepted_by": []}]
    assert example_policy.decide(_req()).explanation is None


def test_rule_outcomes_are_recorded(example_policy):
    d = example_policy.decide(_req())
    assert d.rules["ex1-verify-with-consent"] == "applied"
    assert d.rules["ex2-no-private-spaces"] == "not_applicable"


def test_policy_not_in_force_denies(example_policy):
    d = example_policy.decide(_req(), at=dt.datetime(2023, 6, 1, tzinfo=dt.UTC))
    assert d.effect == "deny" and d.reason == "policy_not_in_force"


def test_rule_validity_window_skips(pack_copy):
    rules = pack_copy / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("    effect: forbid\n    when: has(request.place) && has(request.place.type)", "    effect: forbid\n    valid_from: 2030-01-01\n    when: has(request.place) && has(request.place.type)", 1))
    policy = facegate.load_policy(pack_copy)
    d = policy.decide(_req(place={"type": "private_space"}))
    assert d.rules["ex2-no-private-spaces"] == "skipped" and d.effect == "permit"


def test_an_explained_deny_names_a_permit_not_in_force_that_day(pack_copy):
    """A permit outside its validity window is skipped, not evaluated: the explanation's blocked
    permits say so (it once raised KeyError), as the unmet report does."""
    rules = pack_copy / "rules" / "rules.yaml"
    text = rules.read_text()
    rules.write_text(text.replace("    effect: permit\n", "    effect: permit\n    valid_from: 2030-01-01\n", 1))
    policy = facegate.load_policy(pack_copy)
    d = policy.decide(_req(), explain=True)
    assert d.effect == "deny" and d.rules["ex1-verify-with-consent"] == "skipped"
    blocked = {b["rule"]: b for b in d.explanation["blocked_permits"]}
    assert blocked["ex1-verify-with-consent"]["unmet"] == ["valid_from/valid_until"]
    assert blocked["ex1-verify-with-consent"]["outcome"] == "skipped"
    assert [u for u in d.unmet if u["rule"] == "ex1-verify-with-consent"][0]["failed"][0]["condition"] == "valid_from/valid_until"


def test_audit_mode_is_recorded_only(pack_copy):
    rules = pack_copy / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("mode: warn", "mode: audit"))
    policy = facegate.load_policy(pack_copy)
    d = policy.decide(_req(consent={"type": "bundled", "purposes": ["payment"]}))
    assert d.rules["ex5-bundled-consent-warning"] == "applied" and d.warnings == ()


def test_condition_outcome_table():
    err = EvalError("boom")
    assert _decide.condition_outcome([True], []) == (_decide.APPLIED, None)
    assert _decide.condition_outcome([err, False], []) == (_decide.NOT_APPLICABLE, None)
    assert _decide.condition_outcome([True, err], [])[0] == _decide.ERROR
    assert _decide.condition_outcome([True], [True]) == (_decide.NOT_APPLICABLE, None)
    assert _decide.condition_outcome([True], [err])[0] == _decide.ERROR
    assert _decide.condition_outcome([True], [False, err]) == (_decide.APPLIED, None)
    assert _decide.condition_outcome(["yes"], [])[0] == _decide.ERROR
    assert _decide.TABLE[("forbid", _decide.ERROR)] == "deny"
    assert _decide.TABLE[("permit", _decide.ERROR)] == "none"


def test_merge_obligations_keeps_strictest_retention():
    merged = _decide.merge_obligations([
        {"type": "retention_max_days", "days": 30, "sources": [{"rule": "a", "provision": "P1"}]},
        {"type": "retention_max_days", "days": 7, "sources": [{"rule": "b", "provision": "P2"}]},
        {"type": "display_signage", "sources": [{"rule": "c", "provision": "P3"}]},
    ])
    assert merged[1] == {"type": "retention_max_days", "days": 7, "sources": [{"rule": "a", "provision": "P1"}, {"rule": "b", "provision": "P2"}]}
    assert [m["type"] for m in merged] == ["display_signage", "retention_max_days"]


def test_eval_error_has_no_truth_value():
    with pytest.raises(TypeError):
        bool(EvalError("x"))


def test_one_policy_many_threads(example_policy):
    ages = list(range(0, 40))
    results: dict[int, str] = {}
    def work(age: int) -> None:
        for _ in range(5):
            results[age] = example_policy.decide(_req(subject={"age": age})).effect
    threads = [threading.Thread(target=work, args=(a,)) for a in ages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {a: ("deny" if a < 14 else "permit") for a in ages}


def test_decision_to_dict_shape(example_policy):
    out = example_policy.decide(_req()).to_dict()
    assert {"decision", "determining", "errors", "warnings", "obligations", "policy", "decision_id"} <= set(out)
    assert set(out["determining"][0]) >= {"rule", "provision", "article", "message"}


def test_rules_are_indexed_by_operation_without_changing_decisions(example_policy):
    # The index is read from the checked syntax tree: with the operation known, a `when` that
    # folds to false leaves its rule out of that operation's generated function.
    procedure = example_policy._procedure
    ids = [r.id for r in example_policy.rules]
    kept = {op: {ids[i] for i in procedure.compile(op).kept} for op in ("detect", "verify", "enroll", "erase")}
    assert "ex1-verify-with-consent" in kept["verify"] and "ex1-verify-with-consent" in kept["detect"]
    assert "ex1-verify-with-consent" not in kept["enroll"] | kept["erase"]
    assert all("ex2-no-private-spaces" in k for k in kept.values())
    req = _req(operation="enroll")
    fast, full = example_policy.decide(req), example_policy.decide(req, explain=True)
    assert fast.rules == full.rules and fast.effect == full.effect == "deny"
    assert fast.rules["ex1-verify-with-consent"] == "not_applicable"


def test_exhausted_decision_budget_fails_closed(pack_copy, monkeypatch):
    from facegate import _compile

    rules = pack_copy / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("    when: has(request.place) && has(request.place.type)", "    when: ([1, 2, 3].exists(x, x > 5) || has(request.place)) && has(request.place.type)", 1))
    policy = facegate.load_policy(pack_copy)
    assert policy.decide(_req()).effect == "permit"
    monkeypatch.setattr(_compile, "DECISION_BUDGET", 2)
    d = policy.decide(_req())
    assert d.effect == "deny" and [x["rule"] for x in d.determining] == ["ex2-no-private-spaces"]
    assert d.errors[0]["error"] == "evaluation budget exceeded"


def test_native_and_interpreter_backends_decide_the_example_cases_alike():
    from facegate._cases import run_pack_tests

    for backend in ("native", "interpreter"):
        report = run_pack_tests(facegate.load_policy(EXAMPLE_DIR, backend=backend))
        assert report.passed, (backend, [r.failures for r in report.results if not r.passed])


def test_decision_ids_are_uuid4_and_fixed_once_read(example_policy):
    from facegate._decision import new_id

    assert new_id().count("-") == 4 and new_id()[14] == "4"
    d = example_policy.decide(_req())
    assert d.decision_id == d.decision_id and d.evaluated_at == d.evaluated_at
    assert example_policy.decide(_req()).decision_id != d.decision_id
