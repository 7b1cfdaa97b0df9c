"""Bounded cost: static limits fail at load time, the per-decision budget at run time."""

from __future__ import annotations

from typing import Any

import pytest

from facegate import cel

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "request": {
            "type": "object",
            "properties": {
                "attributes": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                "faces": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}, "maxItems": 512},
                },
                "name": {"type": "string"},
            },
        }
    },
}
EXCEEDED = "evaluation budget exceeded"


def test_budget_counts_comprehension_iterations() -> None:
    program = cel.compile("xs.all(x, x > 0)")
    budget = cel.Budget(3)
    assert program.run({"xs": [1, 2, 3]}, budget) is True
    assert budget.steps == 0
    result = program.run({"xs": [1, 2, 3]}, budget)
    assert result == cel.CELError(EXCEEDED)


def test_budget_counts_function_calls_in_comprehension_bodies() -> None:
    program = cel.compile("xs.all(x, size(x) > 0)")  # 1 iteration + 1 call per element
    budget = cel.Budget(100)
    program.run({"xs": ["a", "b"]}, budget)
    assert budget.steps == 96


def test_budget_charges_call_sites_up_front() -> None:
    program = cel.compile("false && size(x) > 0 && x.startsWith('a')")
    budget = cel.Budget(10)
    assert program.run({"x": "abc"}, budget) is False
    assert budget.steps == 8  # two call sites, charged even though && short-circuits


def test_budget_is_shared_by_the_programs_of_a_decision() -> None:
    first = cel.compile("xs.exists(x, x == 99)")
    second = cel.compile("xs.exists(x, x == 1)")
    budget = cel.Budget(5)
    assert first.run({"xs": [1, 2, 3]}, budget) is False  # 3 steps
    assert second.run({"xs": [1, 2, 3]}, budget) is True  # 1 step: found at once
    assert first.run({"xs": [1, 2, 3]}, budget) == cel.CELError(EXCEEDED)  # needs 3, has 1


def test_budget_error_can_fail_closed_or_be_absorbed() -> None:
    budget = cel.Budget(0)
    program = cel.compile("xs.exists(x, x == 1) || false")
    assert program.run({"xs": [1]}, budget) == cel.CELError(EXCEEDED)
    # `true || ...` is decided before the comprehension runs: no budget needed.
    assert cel.compile("true || xs.exists(x, x == 1)").run({"xs": [1]}, cel.Budget(0)) is True


def test_no_budget_means_unlimited() -> None:
    program = cel.compile("xs.map(x, x * 2).size() > 0")
    assert program.run({"xs": list(range(10_000))}) is True
    assert program.evaluate({"xs": [1]}) is True


def test_evaluate_raises_on_budget_exhaustion() -> None:
    with pytest.raises(cel.CELEvalError, match=EXCEEDED):
        cel.compile("[1, 2].all(x, true)").evaluate({}, budget=cel.Budget(1))


def test_max_length() -> None:
    with pytest.raises(cel.CELCheckError, match="longer than the limit"):
        cel.compile("1 + 1", limits=cel.Limits(max_length=4))


def test_max_depth() -> None:
    deep = "!" * 40 + "true"
    assert cel.compile(deep).run({}) is True
    with pytest.raises(cel.CELCheckError, match="nesting exceeds the limit of `20`") as info:
        cel.compile(deep, limits=cel.Limits(max_depth=20))
    assert info.value.column > 1


def test_deep_expressions_compile_within_python_limits() -> None:
    # Deeper than CPython's 20 nested blocks and 100 indentation levels if inlined.
    ternaries = "false ? 0 : " * 90 + "1"
    assert cel.compile(ternaries).run({}) == 1
    nested = "[1].all(a, " * 4 + "true" + ")" * 4
    assert cel.compile(nested).run({}) is True
    chain = " && ".join(["x"] * 300)
    assert cel.compile(chain).run({"x": True}) is True
    parens = "(" * 200 + "1" + ")" * 200
    assert cel.compile(parens).run({}) == 1


def test_absurd_nesting_is_a_compile_error_not_a_crash() -> None:
    with pytest.raises(cel.CELCompileError):
        cel.compile("[" * 5000 + "]" * 5000)


def test_max_comprehension_nesting() -> None:
    nested = "[[1]].all(a, a.all(b, [1].all(c, c > 0)))"
    assert cel.compile(nested).run({}) is True
    with pytest.raises(cel.CELCheckError, match="nested deeper than the limit of `2`"):
        cel.compile(nested, limits=cel.Limits(max_comprehension_nesting=2))


def test_cost_bound_from_the_schema() -> None:
    program = cel.compile("request.attributes.exists(a, a.startsWith('x'))", schema=SCHEMA)
    assert program.cost_bound == 10 * 2  # maxItems x (iteration + one call)
    nested = cel.compile("request.faces.all(f, f.all(v, v > 0.0))", schema=SCHEMA)
    assert nested.cost_bound is None  # `faces` itself has no maxItems
    assert cel.compile("request.name.size() > 2", schema=SCHEMA).cost_bound == 1
    assert cel.compile("[1, 2, 3].map(x, [1, 2].map(y, x * y))").cost_bound == 3 + 3 * 2


def test_max_cost() -> None:
    text = "request.attributes.all(a, request.attributes.all(b, a != b || a == b))"
    assert cel.compile(text, schema=SCHEMA).cost_bound == 10 + 10 * 10
    with pytest.raises(cel.CELCheckError, match="worst-case cost of `110` steps exceeds the limit of `100`"):
        cel.compile(text, schema=SCHEMA, limits=cel.Limits(max_cost=100))
