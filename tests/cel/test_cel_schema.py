"""Load-time checks against the activation's JSON Schema: typos and type mismatches are
compile errors with a position, not surprises at request time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from facegate import cel

REQUEST = json.loads(
    (Path(__file__).parent / "data" / "request.v1.snapshot.json").read_text(encoding="utf-8")
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "request": REQUEST,
        "params": {
            "type": "object",
            "properties": {
                "limits": {"type": "object", "additionalProperties": {"type": "integer"}},
                "window": {"$ref": "#/$defs/window"},
                "scores": {"type": "array", "items": {"type": "number"}},
            },
        },
    },
    "$defs": {
        "window": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"days": {"type": "integer"}},
        }
    },
}


def check_error(text: str) -> cel.CELCheckError:
    with pytest.raises(cel.CELCheckError) as info:
        cel.compile(text, schema=SCHEMA)
    return info.value


VALID = [
    'request.operation == "analyze"',
    'request.consent.type == "separate"',
    "has(request.consent) && has(request.consent.type)",
    'request.attributes.exists(a, a == "race")',
    '"race" in request.attributes',
    'request.operation in ["identify", "enroll"]',
    "request.subject.age >= 18",
    "request.subject.age < 14.5",  # int against double compares by value
    "request.storage.retention_days + 1 > 30",
    "size(request.attributes) > 3",
    'request.jurisdiction.startsWith("CN")',
    "request.consent == null",  # anything may be compared with null
    "params.limits.anything > 3",  # additionalProperties: a map of ints
    "params.window.days > 3",  # through a local $ref
    "params.scores.all(s, s > 0.5)",
    "dyn(request.subject.age) == 'x'",  # dyn() opts out of the check
    "type(request.subject.age) == int",
]


@pytest.mark.parametrize("text", VALID)
def test_valid_expressions_compile(text: str) -> None:
    cel.compile(text, schema=SCHEMA)


INVALID = [
    ("request.consnet.type == 'x'", "undefined field `consnet` in `request`", 9),
    ("has(request.consnet)", "undefined field `consnet` in `request`", 13),
    ("request.consent.typ", "undefined field `typ` in `request.consent`", 17),
    ("requests.operation", "undeclared reference to `requests`", 1),
    ('request.subject.age == "x"', "no matching overload for `_==_` applied to `(int, string)`", 1),
    ('request.subject.age + "a"', "no matching overload for `_+_` applied to `(int, string)`", 1),
    ("size(request.subject.age)", "no matching overload for `size` applied to `(int)`", 1),
    ("request.subject.age.value", "type `int` has no field `value`", 21),
    ("request.subject.declined_face && 1", "operand of `&&` must be bool, not `int`", 34),
    ("!request.operation", "no matching overload for `!_` applied to `(string)`", 1),
    ("request.subject.age ? 1 : 2", "condition of `?:` must be bool, not `int`", 17),
    ("request.attributes.all(a, a)", "predicate of `all` must be bool, not `string`", 27),
    ("request.subject.age.all(a, true)", "`all` needs a list or map, not `int`", 21),
    ('request.operation == "analyse"', "`analyse` is not a possible value of `request.operation`", 22),
    ('request.operation in ["verify", "identfy"]', "`identfy` is not a possible value", 33),
    (
        'request.attributes.exists(a, a == "rac")',
        "`rac` is not a possible value of `request.attributes[]`",
        35,
    ),
    ('"rac" in request.attributes', "`rac` is not a possible value", 1),
    ("params.window.weeks", "undefined field `weeks` in `params.window`", 15),
    ("params.limits.x + 'a'", "no matching overload for `_+_` applied to `(int, string)`", 1),
    ("request.jurisdiction.matches('(')", "invalid regular expression `(`", 30),
    ("unknown_function(1)", "undeclared reference to function `unknown_function()`", 1),
    ("request.operation.unknownMethod()", "undeclared reference to function `.unknownMethod()`", 19),
    ("size(1, 2)", "no matching overload for `size` applied to `(int, int)`", 1),
    ("1 + 1.0", "no matching overload for `_+_` applied to `(int, double)`", 1),
    ("[1] < [2]", "no matching overload for `_<_`", 1),
]


@pytest.mark.parametrize("text, message, column", INVALID)
def test_invalid_expressions_fail_at_load_time_with_a_position(text: str, message: str, column: int) -> None:
    error = check_error(text)
    assert message in error.message
    assert error.line == 1
    assert error.column == column
    assert error.message == error.message.lower() or "`" in error.message  # user text stays as typed


def test_messages_are_one_lowercase_line() -> None:
    error = check_error("request.consnet.type == 'x'")
    assert "\n" not in str(error)
    assert str(error)[0].islower()


def test_positions_on_later_lines() -> None:
    error = check_error('request.operation == "analyze" &&\n  request.consnet.type == "x"')
    assert (error.line, error.column) == (2, 11)


def test_check_false_defers_type_errors_to_run_time() -> None:
    program = cel.compile('request.subject.age == "x"', schema=SCHEMA, check=False)
    assert (
        program.run({"request": {"operation": "detect", "purpose": "other", "subject": {"age": 3}}}) is False
    )
    program = cel.compile("request.consnet.type", schema=SCHEMA, check=False)
    assert type(program.run({"request": {}})) is cel.CELError


def test_syntax_errors_have_positions() -> None:
    with pytest.raises(cel.CELSyntaxError) as info:
        cel.compile("request.operation == ")
    assert info.value.line == 1 and info.value.column >= 19
    with pytest.raises(cel.CELSyntaxError) as info:
        cel.compile("has(request)")
    assert "has()" in info.value.message
    with pytest.raises(cel.CELSyntaxError) as info:
        cel.compile("[1].all(1, true)")
    assert "simple name" in info.value.message
    assert issubclass(cel.CELSyntaxError, cel.CELCompileError)
    assert issubclass(cel.CELCheckError, cel.CELCompileError)


def test_references_list_the_fields_read() -> None:
    program = cel.compile(
        'request.operation == "analyze" && has(request.consent.type) && request.consent.type == "separate"'
        " && request.attributes.exists(a, a == 'race')",
        schema=SCHEMA,
    )
    assert program.references == {"request.operation", "request.consent.type", "request.attributes"}
    assert ("request", "consent", "type") in program.reference_paths
    assert cel.compile("has(request.review)", schema=SCHEMA).presence_paths == {("request", "review")}


def test_schema_resolves_paths_statically() -> None:
    program = cel.compile('request.operation == "analyze"', schema=SCHEMA)
    assert "in act: raise" not in (program.source or "")  # no qualified-name probing with a schema
    assert program.run({"request": {"operation": "analyze"}}) is True
    assert type(program.run({})) is cel.CELError
    assert type(program.run({"request": "not a map"})) is cel.CELError
