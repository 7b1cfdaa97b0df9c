"""The benchmark compares like with like: its hand-written lambdas answer as the CEL
conditions do on valid requests, and the script runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cel_expressions
import jsonschema
import pytest

from facegate import cel

REQUEST = json.loads(
    (Path(__file__).parent / "data" / "request.v1.snapshot.json").read_text(encoding="utf-8")
)
SCHEMA = cel_expressions.activation_schema(REQUEST)


@pytest.mark.parametrize("index", range(len(cel_expressions.CONDITIONS)), ids=lambda i: f"condition{i:02d}")
def test_hand_written_lambda_matches_the_condition_on_valid_requests(index: int) -> None:
    text, hand = cel_expressions.CONDITIONS[index]
    program = cel.compile(text, schema=SCHEMA)
    validator = jsonschema.Draft202012Validator(REQUEST)
    activations = cel.random_activations(SCHEMA, 600, seed=100 + index, malformed=0.0, missing=0.4)
    compared = 0
    for activation in activations:
        request = activation.get("request")
        if request is None or not validator.is_valid(request):
            continue
        native = program.run(activation)
        if type(native) is cel.CELError:
            continue  # CEL reports an unguarded absent field; the lambda has no error values
        assert native is hand(request), (text, request)
        compared += 1
    assert compared > 100


def test_benchmark_requests_are_valid_and_conditions_compile() -> None:
    validator = jsonschema.Draft202012Validator(REQUEST)
    for request in cel_expressions.REQUESTS:
        validator.validate(request)
    for text, _ in cel_expressions.CONDITIONS:
        cel.compile(text, schema=SCHEMA)


def test_benchmark_script_runs() -> None:
    script = Path(cel_expressions.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300, check=True
    )
    assert "native is" in done.stdout and "hand-written" in done.stdout
