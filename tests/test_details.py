"""Message details kept per distinct set of values read (facegate._details) give what evaluating
the message expression gives, charge the budget as it would, and never keep what depends on more
than the values in their key."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import facegate
from facegate import _compile, cel
from facegate._details import Details
from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))
ACTIVATIONS = 600  # per pack


def _rule(text, schema):
    """A stand-in rule with only a message expression (what Details reads of a rule)."""
    condition = SimpleNamespace(program=_compile.compile_expression(text, schema=schema))
    return SimpleNamespace(message_expr=condition)


def _evaluated(rule, act, budget):
    value = rule.message_expr.program.run(act, budget)
    return value if isinstance(value, str) else None


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_kept_details_equal_evaluated_ones_with_the_same_budget_left(pack):
    policy = facegate.load_policy(pack)
    rules = [(i, r) for i, r in enumerate(policy.rules) if r.message_expr is not None]
    if not rules:
        pytest.skip("no message expressions in this pack")
    details = Details(policy.rules)
    programs = [r.message_expr.program.program for _, r in rules]
    schema = {"type": "object", "properties": {"request": policy.request_schema,
                                               "params": {"type": "object", "properties": {k: {} for k in policy.pack.parameters}}}}
    acts = cel.random_activations(schema, ACTIVATIONS, seed=11, paths=set().union(*(p.reference_paths for p in programs)),
                                  presence=set().union(*(p.presence_paths for p in programs)))
    hits = 0
    for act in acts:
        if not isinstance(act.get("request"), dict):
            act["request"] = {}
        act["params"] = dict(policy.pack.parameters)
        for index, rule in rules:
            for _ in range(2):  # the second call may be served from what the first kept
                kept_budget, fresh_budget = _compile.new_budget(), _compile.new_budget()
                before = len(details._kept)
                assert details.detail(index, act, kept_budget) == _evaluated(rule, act, fresh_budget), (rule.id, act["request"])
                assert kept_budget.steps == fresh_budget.steps, rule.id
                hits += len(details._kept) == before
    assert details._kept, "nothing was kept: the cache is not exercised"
    assert hits


def test_a_kept_detail_is_refused_when_the_budget_is_spent():
    schema = {"type": "object", "properties": {"request": {"type": "object", "properties": {"age": {"type": "integer"}}}}}
    rule = _rule('"age " + string(request.age)', schema)
    details = Details([rule])
    act = {"request": {"age": 7}, "params": {}}
    assert details.detail(0, act, _compile.new_budget()) == "age 7"
    assert details._kept  # kept
    for steps in range(0, 3):
        kept, fresh = cel.Budget(steps), cel.Budget(steps)
        assert details.detail(0, act, kept) == _evaluated(rule, act, fresh)
        assert kept.steps == fresh.steps


def test_values_that_are_not_json_scalars_are_evaluated_every_time():
    schema = {"type": "object", "properties": {"request": {"type": "object", "properties": {"tags": {"type": "array"}}}}}
    rule = _rule('"tags: " + string(size(request.tags))', schema)
    details = Details([rule])
    assert details.detail(0, {"request": {"tags": [1, 2]}, "params": {}}, _compile.new_budget()) == "tags: 2"
    assert details.detail(0, {"request": {"tags": [1]}, "params": {}}, _compile.new_budget()) == "tags: 1"
    assert not details._kept


def test_one_and_true_and_one_point_zero_are_kept_apart():
    schema = {"type": "object", "properties": {"request": {"type": "object", "properties": {"x": {}}}}}
    rule = _rule('"x is " + string(request.x)', schema)
    details = Details([rule])
    values = (1, True, 1.0, "1", 1, True, 1.0, "1")
    seen = [details.detail(0, {"request": {"x": v}, "params": {}}, _compile.new_budget()) for v in values]
    assert seen == [_evaluated(rule, {"request": {"x": v}, "params": {}}, _compile.new_budget()) for v in values]
    assert seen[1] == "x is true" and seen[0] != seen[1]
    assert len(details._kept) == 4
