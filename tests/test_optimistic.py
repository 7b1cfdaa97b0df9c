"""Differential: the optimistic rule-set function (``RuleSet.fast_run``, what ``Policy.decide`` runs
after validating the request) gives exactly what the exact function gives -- the same values,
error messages, order and budget left -- on every shipped pack's operations, for random requests
the pack's schema accepts (fields missing included), and falls back to the exact function
wherever it cannot vouch for a value."""

from __future__ import annotations

import collections
import enum

import jsonschema_rs
import pytest

import facegate
from facegate import _compile, cel
from facegate.cel._check import Checked
from facegate.cel._optimistic import Fallback, proven_kind
from facegate.cel._shared import Side, compile_rule_set
from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))
ACTIVATIONS = 1200  # per pack, spread over the operations; about a quarter pass the schema


def _valid_activations(policy, count, seed):
    procedure = policy._procedure
    schema = {"type": "object", "properties": {
        "request": policy.request_schema,
        "params": {"type": "object", "properties": {k: {} for k in policy.pack.parameters}},
    }}
    valid = invalid = 0
    for n, act in enumerate(cel.random_activations(schema, count, seed=seed, malformed=0.0)):
        if not isinstance(act.get("request"), dict):
            act["request"] = {}
        act["request"]["operation"] = policy.operations[n % len(policy.operations)]
        act["params"] = policy.pack.parameters
        if procedure.violations(act["request"]):
            invalid += 1
            continue
        valid += 1
        yield act
    assert valid > count // 10  # fields missing make some invalid (required ones), most stay valid


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_fast_run_equals_the_exact_function_on_valid_requests(pack):
    policy = facegate.load_policy(pack)
    procedure = policy._procedure
    procedure.prepare()
    seen: collections.Counter[str] = collections.Counter()
    for act in _valid_activations(policy, ACTIVATIONS, seed=11):
        rule_set = procedure._sets[act["request"]["operation"]]
        exact_budget, fast_budget = _compile.new_budget(), _compile.new_budget()
        exact = rule_set.run(act, exact_budget)
        got = rule_set.fast_run(act, fast_budget)
        assert repr(got) == repr(exact), act["request"]  # values, error messages and order
        assert fast_budget.steps == exact_budget.steps
        try:
            alone = rule_set.fast(act, _compile.new_budget())
        except Exception:  # noqa: BLE001 - it gave up: the exact function decided
            seen["fell back"] += 1
        else:
            assert repr(alone) == repr(exact)
            seen["fast"] += 1
    print(f"{pack.name}: {dict(seen)}")  # how often the fast path decided (pytest -s shows it)
    assert seen["fast"] > 0


def test_the_cac_case_requests_are_decided_by_the_fast_path_unless_a_rule_errors():
    policy = facegate.load_policy(ROOT / "policies" / "cn-cac-2023-draft")
    procedure = policy._procedure
    procedure.prepare()
    from facegate._cases import load_cases

    fell_back = []
    for case, _file, _line in load_cases(ROOT / "policies" / "cn-cac-2023-draft"):
        request = case["request"]
        rule_set = procedure._sets[request["operation"]]
        act = {"params": procedure.params, "request": request}
        exact = rule_set.run(act, _compile.new_budget())
        try:
            assert repr(rule_set.fast(act, _compile.new_budget())) == repr(exact)
        except (KeyError, Fallback):
            fell_back.append(case["id"])
            # it gives up only where the exact function has an error value to report
            assert any(type(w) is cel.CELError or type(u) is cel.CELError for _, w, u in exact), case["id"]
    assert len(fell_back) < 10


def _rule_set(texts, schema, validated=True, functions=None):
    sides = []
    for when, unless in texts:
        w = cel.compile(when, schema=schema, functions=functions or {})
        u = cel.compile(unless, schema=schema, functions=functions or {}) if unless else None
        sides.append((Side((w.tree,), (w.checked,)), Side((u.tree,), (u.checked,)) if u else None))
    return compile_rule_set(sides, functions or {}, validated={"request": schema["properties"]["request"]} if validated else None)


SCHEMA = {"type": "object", "properties": {"request": {"type": "object", "properties": {
    "purpose": {"type": "string", "enum": ["a", "b"]},
    "flag": {"type": "boolean"},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "string"}},
    "place": {"type": "object", "properties": {"kind": {"type": "string"}}},
    "loose": {},
}}}}


def test_a_request_breaking_an_assumption_is_decided_exactly():
    rs = _rule_set([("request.loose == 'x'", None), ("request.age > 17", None), ("has(request.place) && request.place.kind == 'k'", None),
                    ("request.flag", "request.purpose == 'a'")], SCHEMA)
    # values the schema leaves open, numbers and missing keys make the fast function give up
    for request in ({"loose": 1, "age": 18, "flag": True, "purpose": "a"}, {"loose": "x", "age": 18.0, "flag": False},
                    {"loose": "x", "age": 3, "place": {}, "flag": True, "purpose": "b"}, {"loose": "x"}):
        act = {"request": request}
        exact = rs.run(act, cel.Budget(100))
        assert repr(rs.fast_run(act, cel.Budget(100))) == repr(exact)
    with pytest.raises(Fallback):  # `loose` is not proven a string: tested, and it is not one
        rs.fast({"request": {"loose": 1, "age": 18, "flag": True, "purpose": "a"}}, cel.Budget(100))
    with pytest.raises(KeyError):  # a missing key: the exact function reports the error
        rs.fast({"request": {"loose": "x"}}, cel.Budget(100))
    assert rs.fast({"request": {"loose": "x", "age": 18, "flag": True, "purpose": "b", "place": {"kind": "k"}}},
                   cel.Budget(100)) == [(0, True, None), (1, True, None), (2, True, None), (3, True, False)]


def test_without_a_validated_schema_the_rule_set_is_only_exact():
    rs = _rule_set([("request.flag", None)], SCHEMA, validated=False)
    assert rs.fast_run is rs.run and rs.fast is None and rs.fast_source is None


def test_an_exhausted_budget_gives_the_exact_errors_and_leaves_the_same_budget():
    act = {"request": {"tags": ["a", "b", "x"], "flag": True, "purpose": "a"}}
    for texts in ([("size(request.tags) > 0", None), ("request.flag", "size(request.purpose) == 1")],  # call sites only
                  [("size(request.tags) > 0", None), ("request.tags.exists(t, t == 'x')", "size(request.purpose) == 1"),
                   ("request.flag", None)]):  # and a comprehension, charged per iteration
        rs = _rule_set(texts, SCHEMA)
        for steps in range(0, 9):  # enough for none, some or all of the charges
            exact_budget, fast_budget = cel.Budget(steps), cel.Budget(steps)
            exact = rs.run(act, exact_budget)
            assert repr(rs.fast_run(act, fast_budget)) == repr(exact), steps
            assert fast_budget.steps == exact_budget.steps, steps
        assert any(cel.CELError in (type(w), type(u)) for _, w, u in rs.run(act, cel.Budget(1)))  # exhaustion was reached
        assert rs.fast(act, cel.Budget(100)) == rs.run(act, cel.Budget(100))  # with room, the fast path decides


def test_a_custom_function_runs_through_the_exact_code_and_its_errors_fall_back():
    from facegate._plugins import CelFunction

    def probe(x):
        if x == "b":
            raise RuntimeError("a plugin's bug")
        return x == "a"

    fn = CelFunction(name="probe", impl=probe, arg_types=("string",), result_type="bool")
    rs = _rule_set([("probe(request.purpose)", None), ("request.flag && probe(request.purpose)", None)], SCHEMA, functions={"probe": fn})
    act = {"request": {"purpose": "a", "flag": True}}
    assert rs.fast(act, cel.Budget(100)) == rs.run(act, cel.Budget(100)) == [(0, True, None), (1, True, None)]
    act = {"request": {"purpose": "b", "flag": True}}  # the function errs: an error value, reported exactly
    with pytest.raises(Fallback):
        rs.fast(act, cel.Budget(100))
    exact = rs.run(act, cel.Budget(100))
    assert repr(rs.fast_run(act, cel.Budget(100))) == repr(exact) and type(exact[0][1]) is cel.CELError


def test_proven_kinds_come_from_the_schema_s_own_types():
    root = {"type": "object", "$defs": {"s": {"type": "string"}}, "properties": {
        "a": {"type": "string"}, "b": {"enum": ["x", "y"]}, "c": {"$ref": "#/$defs/s"}, "d": {"type": ["string", "null"]},
        "e": {"properties": {"f": {"type": "boolean"}}}, "g": {"type": "integer"}, "h": {"enum": ["x", 1]},
        "o": {"type": "object", "additionalProperties": {"type": "array"}}}}
    kinds = {k: proven_kind(root, root, (k,)) for k in "abcdegh"}
    assert kinds == {"a": "str", "b": "str", "c": "str", "d": None, "e": None, "g": None, "h": None}
    assert proven_kind(root, root, ("e", "f")) == "bool"  # read only from a dict: its properties apply
    assert proven_kind(root, root, ("o", "any")) == "list"


class _Str(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class _Small(enum.IntEnum):
    ONE = 1


def test_the_validator_gives_the_python_types_the_fast_function_assumes():
    """What the fast function trusts: jsonschema-rs refuses ``str`` subclasses, and ``1`` for a
    boolean; numbers are never trusted (``1.0`` and an ``IntEnum`` pass as integers)."""
    validator = jsonschema_rs.validator_for({"type": "object", "properties": {
        "s": {"type": "string"}, "b": {"type": "boolean"}, "i": {"type": "integer"}}})
    with pytest.raises(ValueError):
        validator.is_valid({"s": _Str("x")})
    assert not validator.is_valid({"b": 1})
    booleans = jsonschema_rs.validator_for({"enum": [True, False]})
    assert not booleans.is_valid(1) and not booleans.is_valid(0)  # enum and const compare JSON types too
    assert not jsonschema_rs.validator_for({"const": True}).is_valid(1)
    assert validator.is_valid({"i": 1.0}) and validator.is_valid({"i": _Small.ONE})
    schema = {"type": "object", "properties": {"request": {"type": "object", "properties": {"i": {"type": "integer"}}}}}
    rs = _rule_set([("request.i == 1", None)], schema)
    for value in (1.0, _Small.ONE, True, 2**70):
        act = {"request": {"i": value}}
        assert repr(rs.fast_run(act, cel.Budget(10))) == repr(rs.run(act, cel.Budget(10))), value


def test_checked_without_types_still_compiles():
    rs = compile_rule_set([(Side((cel.compile("true").tree,), (Checked(),)), None)], {}, validated={})
    assert rs.fast({}, cel.Budget(0)) == rs.run({}, cel.Budget(0)) == [(0, True, None)]


def test_a_shared_comprehension_is_charged_as_often_as_the_exact_function_charges_it():
    comp = "request.tags.exists(t, t == 'x')"
    deep = comp
    for i in range(30):  # deep enough for the exact generator to move code into helpers, without its memo
        deep = f"(request.loose == {i} || ({deep} && request.flag))"
    act = {"request": {"tags": ["a", "b", "x"], "flag": True, "loose": 99}}
    shared = [(f"request.flag && {comp}", None), (f"request.loose != 1 && {comp}", None)]  # not a shared first test
    for texts, fast in ((shared, True), ([(deep, None), (f"{comp} && request.flag", None)], False)):
        rs = _rule_set(texts, SCHEMA)
        for steps in (100, 5, 3, 0):
            exact_budget, fast_budget = cel.Budget(steps), cel.Budget(steps)
            exact = rs.run(act, exact_budget)
            assert repr(rs.fast_run(act, fast_budget)) == repr(exact) and fast_budget.steps == exact_budget.steps, (texts, steps)
        if fast:  # memoised by both: run, and charged, once
            budget = cel.Budget(100)
            assert rs.fast(act, budget) == [(0, True, None), (1, True, None)] and budget.steps == 97
        else:  # the exact code evaluates it twice there: the fast function does not guess
            with pytest.raises(Fallback):
                rs.fast(act, cel.Budget(100))
