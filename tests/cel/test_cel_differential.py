"""Differential test: the native compiler against cel-python's interpreter.

The oracle is cel-python with facegate's documented spec corrections
(``facegate.cel._interp.SPEC_CORRECTIONS``); released cel-python is compared too, and
each sampled disagreement with it must be explained by one of those corrections.

1. Rule-like: the 25 policy conditions of ``benchmarks/cel_expressions.py``, each against
   10,000 random requests (valid, malformed, missing fields) drawn from the request schema.
2. Random: hypothesis-generated expressions over every supported feature, each against
   random activations.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cel_expression_strategy as strategy
import pytest
from cel_expressions import CONDITIONS, activation_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facegate import cel
from facegate.cel.testing import DifferentialReport

SCHEMA = activation_schema(
    json.loads((Path(__file__).parent / "data" / "request.v1.snapshot.json").read_text(encoding="utf-8"))
)
REQUESTS_PER_RULE = 10_000
TOTALS: Counter[str] = Counter()


def _tally(report: DifferentialReport, kind: str) -> None:
    TOTALS[f"{kind} expressions"] += 1
    TOTALS[f"{kind} activations"] += report.activations
    TOTALS[f"{kind} distinct"] += report.distinct
    TOTALS[f"{kind} divergences"] += report.divergence_count
    TOTALS[f"{kind} compared with released cel-python"] += report.interpreter_compared
    TOTALS[f"{kind} disagreeing with released cel-python"] += report.interpreter_divergences
    for name, count in report.explained.items():
        TOTALS[f"explained by {name}"] += count


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    # Visible with `pytest -s`: the counts quoted in reports.
    print("\ndifferential totals:", dict(sorted(TOTALS.items())))


def _describe(report: DifferentialReport) -> str:
    return "\n".join(
        f"activation={d.activation!r}\n  native={d.native!r}\n  corrected={d.reference!r}\n  released={d.interpreter!r}"
        for d in report.divergences[:3]
    )


@pytest.mark.parametrize("index", range(len(CONDITIONS)), ids=lambda i: f"condition{i:02d}")
def test_policy_conditions_agree_on_10000_requests(index: int) -> None:
    text = CONDITIONS[index][0]
    program = cel.compile(text, schema=SCHEMA)
    requests = cel.random_activations(
        SCHEMA, REQUESTS_PER_RULE, seed=index, paths=program.reference_paths, presence=program.presence_paths
    )
    report = cel.testing_differential(text, requests, schema=SCHEMA, released_limit=200)
    _tally(report, "rule")
    assert report.activations == REQUESTS_PER_RULE
    assert report.ok, _describe(report)
    assert report.unexplained <= 1  # one disagreement may need two corrections at once
    assert 0 < report.errors < REQUESTS_PER_RULE  # malformed requests do produce error values


@settings(
    max_examples=350,
    derandomize=True,  # the same expressions on every run: reproducible, never flaky
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=strategy.expressions(), seed=st.integers(0, 2**32 - 1), with_schema=st.booleans())
def test_random_expressions_agree(text: str, seed: int, with_schema: bool) -> None:
    schema = strategy.SCHEMA if with_schema else None
    try:
        program = cel.compile(text, schema=schema, check=False)
    except cel.CELCompileError:
        TOTALS["random expressions rejected at compile time"] += 1
        return
    activations = cel.random_activations(
        strategy.SCHEMA,
        40,
        seed=seed,
        paths=program.reference_paths,
        presence=program.presence_paths,
        malformed=0.15,
    )
    report = cel.testing_differential(text, activations, schema=schema, check=False, released_limit=8)
    _tally(report, "random")
    assert report.ok, f"{text}\n{_describe(report)}"


def test_differential_helper_reports_a_planted_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    # The helper must notice when the native program is wrong.
    from facegate.cel import _runtime

    monkeypatch.setattr(_runtime, "equals", lambda a, b: True)
    report = cel.testing_differential("x == [1]", [{"x": [2]}, {"x": [1]}])
    assert not report.ok
    assert report.divergence_count == 1
    assert report.divergences[0].native is True and report.divergences[0].reference is False


def test_differential_helper_on_requests_of_the_packs() -> None:
    # How the engine will call it on every condition of the shipped policy packs.
    activations: list[dict[str, Any]] = cel.random_activations(SCHEMA, 200, seed=7)
    report = cel.testing_differential('request.purpose == "marketing"', activations, schema=SCHEMA)
    assert report.ok
    assert report.activations == 200
    assert report.interpreter_compared == 200
