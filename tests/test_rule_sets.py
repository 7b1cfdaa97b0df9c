"""Differential: a pack compiled into one function per operation (shared sub-expressions, the
operation folded, rules nested under shared conjuncts) gives every rule the value its own
conjunction gives, on random activations -- valid, malformed and with fields missing."""

from __future__ import annotations

import pytest

import facegate
from facegate import _compile, _decide, cel
from facegate.cel import _ast
from facegate.cel._check import Checked
from facegate.cel._shared import Side, compile_rule_set
from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))
ACTIVATIONS = 3000  # per pack, spread over the operations


def _side(conditions):
    programs = [c.program.program for c in conditions]
    return Side(tuple(p.tree for p in programs), tuple(p.checked for p in programs)) if programs else None


def _joined(conditions, functions):
    if not conditions:
        return None
    return cel.compile(" && ".join(f"({c.expanded})" for c in conditions), check=False, functions=functions)


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_rule_sets_agree_with_each_rules_own_conjunction(pack):
    policy = facegate.load_policy(pack)
    functions = policy.pack.functions
    operations = list(policy.operations)
    sides = [(_side(r.when), _side(r.unless)) for r in policy.rules]
    sets = {op: compile_rule_set(sides, functions, {("request", "operation"): op}) for op in operations}
    own = [(_joined(r.when, functions), _joined(r.unless, functions)) for r in policy.rules]
    schema = {"type": "object", "properties": {
        "request": policy.request_schema,
        "params": {"type": "object", "properties": {k: {} for k in policy.pack.parameters}},
    }}
    paths = set().union(*(p.reference_paths for pair in own for p in pair if p is not None))
    presence = set().union(*(p.presence_paths for pair in own for p in pair if p is not None))
    acts = cel.random_activations(schema, ACTIVATIONS, seed=7, paths=paths, presence=presence)
    checked = 0
    for n, act in enumerate(acts):
        op = operations[n % len(operations)]
        if not isinstance(act.get("request"), dict):
            act["request"] = {}
        act["request"]["operation"] = op  # the function of an operation is only called with it
        act["params"] = dict(policy.pack.parameters)
        got = {i: (w, u) for i, w, u in sets[op].run(act, cel.Budget(_compile.DECISION_BUDGET))}
        for i, (when, unless) in enumerate(own):
            w = when.run(act, cel.Budget(_compile.DECISION_BUDGET))
            u = unless.run(act, cel.Budget(_compile.DECISION_BUDGET)) if unless is not None and w is True else None
            expected = _decide.outcome(w, u)
            actual = _decide.outcome(*got[i]) if i in got else (_decide.NOT_APPLICABLE, None)
            assert actual == expected, (policy.rules[i].id, op, act["request"])
            items = _decide.condition_outcome(
                [c.program.run(act) for c in policy.rules[i].when], [c.program.run(act) for c in policy.rules[i].unless])
            assert actual[0] == items[0], (policy.rules[i].id, op)
            checked += 1
    assert checked == ACTIVATIONS * len(policy.rules)


def test_folding_a_known_field_drops_the_rules_it_rules_out_and_keeps_errors():
    schema = {"type": "object", "properties": {"request": {"type": "object", "properties": {
        "operation": {"type": "string"}, "x": {}, "y": {}}}}}

    def side(text):
        program = cel.compile(text, schema=schema)
        return Side((program.tree,), (program.checked,))

    rules = [
        (side('request.operation == "verify" && request.x > 1'), None),
        (side('request.operation != "verify" || request.x'), None),
        (side('request.operation in ["detect", "erase"]'), None),
        (side('request.y == 1'), side('request.operation == "verify"')),
    ]
    rs = compile_rule_set(rules, {}, {("request", "operation"): "verify"})
    assert rs.kept == (0, 1, 3)
    act = {"request": {"operation": "verify", "x": "text", "y": 1}}
    got = {i: (w, u) for i, w, u in rs.run(act)}
    assert type(got[0][0]) is cel.CELError  # "text" > 1 still errors: folding removed only the known part
    assert type(got[1][0]) is cel.CELError  # `false || "text"` is an error, not "text"
    assert got[3] == (True, True)


def test_a_shared_sub_expression_is_evaluated_once_per_call():
    calls = []

    def probe(x):
        calls.append(x)
        return True

    fn = cel.CelFunction("probe", probe, ("string",), "bool")
    program = cel.compile('probe(request.a) && request.b == 1', check=False, functions={"probe": fn})
    side = Side((program.tree,), (program.checked,))
    rs = compile_rule_set([(side, None)] * 5, {"probe": fn})
    results = rs.run({"request": {"a": "x", "b": 1}})
    assert [i for i, *_ in results] == [0, 1, 2, 3, 4] and calls == ["x"]
    assert rs.shared >= 1


def test_a_rule_that_folds_to_false_is_left_out():
    rs = compile_rule_set([(Side((_ast.Lit(False, 0, 0),), (Checked(),)), None)], {})
    assert rs.kept == () and rs.run({}) == []
