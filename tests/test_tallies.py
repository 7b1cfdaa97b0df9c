"""Decisions through the kept tallies: the optimistic function's values key a kept tally as they
are (they are only ever the objects True, False and None), and deciding with them gives the
decision the exact function gives, on every pack's case requests and random valid requests."""

from __future__ import annotations

import pytest
from test_optimistic import _valid_activations

import facegate
from facegate._cases import load_cases
from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))


def _comparable(decision):
    out = decision.to_dict()
    for key in ("decision_id", "evaluated_at"):
        out.pop(key)
    return out


def _exact_only(pack):
    policy = facegate.load_policy(pack)
    procedure = policy._procedure
    procedure.prepare()
    for operation in policy.operations:
        procedure._fast[operation] = None  # every decision through the exact function and a fresh count
        procedure._runs[operation] = procedure._exact[operation]
    procedure._tallies.clear()
    return policy


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_the_optimistic_values_are_only_true_false_and_none(pack):
    policy = facegate.load_policy(pack)
    procedure = policy._procedure
    procedure.prepare()
    if procedure.windowed:  # window rules' values are merged in apart: the wrapper decides, no value is a key
        assert all(procedure._fast[op] is None for op in policy.operations)
        assert all(procedure._sets[op].fast is not None for op in policy.operations)  # still optimistic, through the wrapper
        return
    seen = 0
    for act in _valid_activations(policy, 600, seed=5):
        fast = procedure._fast[act["request"]["operation"]]
        if fast is None:
            continue
        try:
            results = fast(act, facegate._compile.new_budget())
        except Exception:  # noqa: BLE001 - it gave up: the exact function decides (tested elsewhere)
            continue
        for _, when, unless in results:
            assert when is True and (unless is None or unless is True or unless is False)
            seen += 1
    assert seen


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_kept_tallies_decide_as_the_exact_function(pack):
    policy, exact = facegate.load_policy(pack), _exact_only(pack)
    requests = [act["request"] for act in _valid_activations(policy, 600, seed=9)]
    import yaml

    for path in sorted((pack / "cases").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            requests += [c["request"] for c in (doc or {}).get("cases", []) if isinstance(c, dict) and isinstance(c.get("request"), dict)]
    for request in requests * 2:  # the second pass is served from the kept tallies
        assert _comparable(policy.decide(request)) == _comparable(exact.decide(request)), request
    assert policy._procedure._by_values or policy._procedure.windowed


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_a_deny_whose_tally_had_a_permit_apply_has_the_unmet_permits_explain_finds(pack):
    """A deny tally in which an enforced permit applied (its outcomes typed ``Overruled``) answers
    ``unmet`` with nothing at once; on every case and random valid request of every pack that is what the unmet-permit
    report finds from the rules, and such tallies are seen."""
    from facegate._decide import Overruled
    from facegate.explain._unmet import unmet_permits

    policy = facegate.load_policy(pack)
    procedure = policy._procedure
    requests = [case["request"] for case, _, _ in load_cases(pack)] + [a["request"] for a in _valid_activations(policy, 300, seed=11)]
    short = 0
    for request in requests:
        decision = policy.decide(request)
        trace = decision._trace
        if decision.effect != "deny" or trace.activation is None:
            continue
        found = unmet_permits(policy, procedure.candidates(request["operation"]), trace.activation, None, trace.outcomes)
        assert decision.unmet == found, request
        short += type(trace.outcomes) is Overruled
    if pack.name == "cn-cac-2023-draft":
        assert short >= 3


def test_decisions_of_a_kept_tally_get_their_own_reference_and_obligation_dicts():
    policy = facegate.load_policy(ROOT / "policies" / "cn-cac-2023-draft")
    request = next(case["request"] for case, _, _ in load_cases(ROOT / "policies" / "cn-cac-2023-draft")
                   if (d := policy.decide(case["request"])).permitted and d.obligations)
    first, second = policy.decide(request), policy.decide(request)
    assert first.__dict__["_applied"] == second.__dict__["_applied"]  # the same kept tally
    assert first.determining == second.determining and first.obligations == second.obligations
    for x, y in zip((*first.determining, *first.obligations), (*second.determining, *second.obligations)):
        assert x is not y
    first.obligations[0]["type"] = "changed"
    assert policy.decide(request).obligations[0]["type"] == second.obligations[0]["type"] != "changed"
