"""CEL semantics of the native backend, case by case, each with the reason it matters.

The conformance suite covers the language broadly; these pin down what policies lean on:
error absorption, overflow, ``has()``, the macros, and Python's ``bool``-is-an-``int``.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from facegate import cel

ERROR = object()  # expected: an error value


def run(text: str, **variables: Any) -> Any:
    return cel.compile(text, check=False).run(variables)


def assert_result(result: Any, expected: Any) -> None:
    if expected is ERROR:
        assert type(result) is cel.CELError, result
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(result, float) and math.isnan(result)
    else:
        assert result == expected and type(result) is type(expected), result


# -- && and || absorb an error when the other side decides, in either order -----------

ABSORPTION = [
    ("false && 1/0 == 1", False),
    ("1/0 == 1 && false", False),
    ("true && 1/0 == 1", ERROR),
    ("1/0 == 1 && true", ERROR),
    ("true || 1/0 == 1", True),
    ("1/0 == 1 || true", True),
    ("false || 1/0 == 1", ERROR),
    ("1/0 == 1 || false", ERROR),
    ("1/0 == 1 && 2/0 == 1 && false", False),  # a later false still decides
    ("x.missing || true", True),  # an unbound variable is an error value too
    ("'horses' && false", False),  # non-bool operands behave like errors
    ("'horses' && true", ERROR),
    ("!(1/0 == 1)", ERROR),
    ("1/0 == 1 ? 1 : 2", ERROR),
    ("true ? 1 : 1/0", 1),  # the branch not taken is not evaluated
    ("[1, 0].exists(n, 1/n == 1)", True),  # exists: a true element absorbs errors
    ("[0, 1].all(n, 1/n == 2)", False),  # all: a false element absorbs errors
    ("[0, 1].all(n, 1/n == 1)", ERROR),
    ("[0, 1].exists_one(n, 1/n == 1)", ERROR),  # exists_one never absorbs
]


@pytest.mark.parametrize("text, expected", ABSORPTION)
def test_logical_operators_absorb_errors_commutatively(text: str, expected: Any) -> None:
    assert_result(run(text), expected)


# -- numbers: int64/uint64 overflow, division, and Python's bool -------------------------

NUMBERS = [
    ("9223372036854775807 + 1", ERROR),
    ("-9223372036854775808 - 1", ERROR),
    ("-(-9223372036854775808)", ERROR),
    ("-9223372036854775808 / -1", ERROR),
    ("-9223372036854775808 % -1", ERROR),
    ("5000000000 * 5000000000", ERROR),
    ("18446744073709551615u + 1u", ERROR),
    ("0u - 1u", ERROR),
    ("-7 / 2", -3),  # truncation toward zero, not Python's floor
    ("-7 % 2", -1),  # the sign of the dividend
    ("7 % -2", 1),
    ("1 / 0", ERROR),
    ("1 % 0", ERROR),
    ("1u / 0u", ERROR),
    ("1.0 / 0.0", math.inf),
    ("-1.0 / 0.0", -math.inf),
    ("0.0 / 0.0", math.nan),
    ("1.5 % 1.0", ERROR),  # no double modulus
    ("1 + 1.0", ERROR),  # no mixed-type arithmetic
    ("1 + 1u", ERROR),
    ("-(1u)", ERROR),
    ("true + 1", ERROR),  # bool is not a number in CEL
    ("1 == 1.0", True),  # but comparisons are by value across int, uint and double
    ("1u == 1", True),
    ("1 < 1.5", True),
    ("9223372036854775807 < 9223372036854775808.0", False),  # int converts to double, like cel-go
    ("true == 1", False),
    ("1 == true", False),
    ("true < 1", ERROR),
    ("[1] == [true]", False),
    ("1 in [true]", False),
    ("true in [1]", False),
    ("1.0 in [1]", True),
    ("0.0/0.0 == 0.0/0.0", False),
    ("[0.0/0.0] == [0.0/0.0]", False),  # no identity shortcut for NaN inside lists
]


@pytest.mark.parametrize("text, expected", NUMBERS)
def test_numbers(text: str, expected: Any) -> None:
    assert_result(run(text), expected)


def test_nan_in_a_list_from_the_activation_is_not_found() -> None:
    nan = float("nan")
    assert run("x in xs", x=nan, xs=[nan]) is False  # Python's `in` would say True


# -- maps, fields and has() ------------------------------------------------------------

FIELDS = [
    ("{'a': 1}.a", 1),
    ("{'a': 1}.b", ERROR),  # no such key
    ("{'a': 1}['b']", ERROR),
    ("has({'a': 1}.a)", True),
    ("has({'a': 1}.b)", False),
    ("has({'a': {'b': 1}}.a.b)", True),
    ("has({'a': 1}.b.c)", ERROR),  # the operand {'a': 1}.b is itself an error
    ("has({'a': 'text'}.a.b)", ERROR),  # has() on a string: an error, not false
    ("{1: 'one'}[1.0]", "one"),  # numeric keys compare by value
    ("{1: 'one'}[1u]", "one"),
    ("{1: 'one'}[true]", ERROR),  # but bool keys are not numbers
    ("{true: 'yes'}[1]", ERROR),
    ("'a' in {'a': 1}", True),
    ("true in {1: 'one'}", False),
    ("{true: 1, 1: 2}", ERROR),  # distinct CEL keys a Python dict cannot hold apart
    ("{'a': 1, 'a': 2}", ERROR),  # repeated key
    ("{1: 'a', 1u: 'b'}", ERROR),  # repeated key across int and uint
    ("{1.5: 'a'}", ERROR),  # doubles are not map keys
    ("{'k': 1/0}", ERROR),  # a literal with an error is an error
    ("[1, 1/0]", ERROR),
    ("[1, 2][1]", 2),
    ("[1, 2][2]", ERROR),
    ("[1, 2][-1]", ERROR),  # no Python negative indexing
    ("[1, 2][1u]", 2),
    ("[1, 2][1.0]", 2),
    ("[1, 2][0.5]", ERROR),
    ("'abc'[0]", ERROR),  # strings are not indexable
    ("'a' in 'abc'", ERROR),  # nor containers for `in`
    ("(1).field", ERROR),
]


@pytest.mark.parametrize("text, expected", FIELDS)
def test_fields_maps_and_has(text: str, expected: Any) -> None:
    assert_result(run(text), expected)


def test_has_on_the_activation() -> None:
    program = cel.compile("has(request.consent.type)")
    assert program.run({"request": {"consent": {"type": "x"}}}) is True
    assert program.run({"request": {"consent": {}}}) is False
    # CEL: has(a.b.c) evaluates a.b first; a missing `consent` is an error, not false.
    assert type(program.run({"request": {}})) is cel.CELError
    guarded = cel.compile("has(request.consent) && has(request.consent.type)")
    assert guarded.run({"request": {}}) is False


def test_activation_values_are_used_in_place() -> None:
    attributes = ["race"]
    assert cel.compile("request.attributes").run({"request": {"attributes": attributes}}) is attributes


# -- macros ----------------------------------------------------------------------------

MACROS = [
    ("[1, 2, 3].all(x, x > 0)", True),
    ("[1, 2, 3].exists(x, x > 2)", True),
    ("[1, 2, 3].exists_one(x, x > 1)", False),
    ("[1, 2, 3].map(x, x * 2)", [2, 4, 6]),
    ("[1, 2, 3].map(x, x > 1, x * 10)", [20, 30]),
    ("[1, 2, 3].filter(x, x != 2)", [1, 3]),
    ("{'a': 1, 'b': 2}.map(k, k)", ["a", "b"]),  # maps iterate their keys
    ("{'a': 1}.all(k, k == 'a')", True),
    ("[1, 2].map(x, 1/0)", ERROR),
    ("[1, 2].filter(x, x)", ERROR),  # a non-bool predicate is an error
    ("'abc'.all(c, true)", ERROR),  # strings are not ranges
    ("[[1, 2], [3]].map(xs, xs.map(x, x + 1))", [[2, 3], [4]]),
    ("[1].exists(x, [2].exists(x, x == 2))", True),  # the inner x shadows the outer
    ("[1, 2].all(i, v, v > i)", True),  # the two-variable form: index and value
    ("{'a': 1}.exists(k, v, k == 'a' && v == 1)", True),
    ("[3, 4].transformList(i, v, v * i)", [0, 4]),
    ("{'a': 1}.transformMap(k, v, v + 1)", {"a": 2}),
]


@pytest.mark.parametrize("text, expected", MACROS)
def test_macros(text: str, expected: Any) -> None:
    assert_result(run(text), expected)


def test_comprehension_variable_shadows_the_activation() -> None:
    assert run("[1, 2].exists(request, request == 2)", request={"x": 1}) is True


# -- strings, conversions, types, time ------------------------------------------------------

FUNCTIONS = [
    ("size('héllo')", 5),  # code points, not bytes
    ("size(b'h\\xc3\\xa9')", 3),
    ("size([1, 2])", 2),
    ("'abc'.size()", 3),
    ("size(null)", ERROR),
    ("size(1)", ERROR),
    ("'abc'.contains('b')", True),
    ("'abc'.startsWith('ab')", True),
    ("'abc'.endsWith('bc')", True),
    ("[1].contains(1)", ERROR),  # contains is a string function
    ("'abc'.matches('^a.c$')", True),
    ("'xabcx'.matches('abc')", True),  # RE2 search, not full match
    ("'abc'.matches('(')", ERROR),
    ("int('42')", 42),
    ("int(' 42')", ERROR),
    ("int('0x10')", ERROR),
    ("int(3.9)", 3),
    ("int(-3.9)", -3),
    ("int(1e19)", ERROR),
    ("int(true)", ERROR),
    ("uint(-1)", ERROR),
    ("uint(42)", cel.UInt(42)),
    ("double('2.5')", 2.5),
    ("double('1_000')", ERROR),
    ("string(1.5)", "1.5"),
    ("string(3.0)", "3"),  # Go's %g, as cel-go prints doubles
    ("string(1e6)", "1e+06"),
    ("string(true)", "true"),
    ("string(b'\\xff')", ERROR),  # invalid UTF-8
    ("string(null)", ERROR),
    ("bytes('é')", b"\xc3\xa9"),
    ("bool('TRUE')", True),
    ("bool('yes')", ERROR),
    ("dyn([1, 'a'])", [1, "a"]),
    ("type(1) == int", True),
    ("type(1u) == uint", True),
    ("type(type(1)) == type", True),
    ("type({}) == map", True),
    ("type(null) == null_type", True),
    ("type(duration('1s')) == google.protobuf.Duration", True),
    ("timestamp('2009-02-13T23:31:30Z') == timestamp(1234567890)", True),
    ("timestamp('2009-02-13T23:31:30Z') + duration('1h') > timestamp('2009-02-14T00:00:00Z')", True),
    ("timestamp('2009-02-13T23:31:30Z') - timestamp('2009-02-13T23:30:30Z') == duration('60s')", True),
    ("duration('1h') - duration('30m') == duration('1800s')", True),
    ("timestamp('2009-02-13T23:31:30Z').getFullYear()", 2009),
    ("timestamp('2009-02-13T23:31:30Z').getDayOfWeek()", 5),
    ("timestamp('2009-02-13T23:31:30Z').getHours('Asia/Shanghai')", 7),
    ("timestamp('2009-02-13T23:31:30Z').getHours('Nowhere/City')", ERROR),
    ("duration('3730s').getMinutes()", 62),
    ("timestamp('10000-01-01T00:00:00Z')", ERROR),
    ("duration('1x')", ERROR),
    ("-duration('1s')", ERROR),  # the spec negates int and double only
    ("string(duration('1.5s'))", "1.5s"),
    ("string(timestamp('2009-02-13T23:31:30.5+01:00'))", "2009-02-13T22:31:30.5Z"),
]


@pytest.mark.parametrize("text, expected", FUNCTIONS)
def test_functions(text: str, expected: Any) -> None:
    assert_result(run(text), expected)


# -- literals --------------------------------------------------------------------------

LITERALS = [
    ("1u", cel.UInt(1)),
    ("0x10", 16),
    ("-9223372036854775808", -9223372036854775808),
    ("1e3", 1000.0),
    ("'\\u00e9\\x41\\101\\n'", "éAA\n"),
    ("r'\\n'", "\\n"),
    ("'''a\nb'''", "a\nb"),
    ("b'\\xff\\000'", b"\xff\x00"),
    ("b'é'", b"\xc3\xa9"),
    ("null", None),
    ("[1, 'a', null]", [1, "a", None]),
    ("{'k': [1]}", {"k": [1]}),
    ("{'content-type': 1}.`content-type`", 1),  # backtick-quoted field names
]


@pytest.mark.parametrize("text, expected", LITERALS)
def test_literals(text: str, expected: Any) -> None:
    assert_result(run(text), expected)


@pytest.mark.parametrize("text", ["9223372036854775808", "18446744073709551616u", "'\\q'", "'\\ud800'"])
def test_invalid_literals_are_syntax_errors(text: str) -> None:
    with pytest.raises(cel.CELSyntaxError):
        cel.compile(text)


def test_qualified_variable_names_resolve_longest_prefix_first() -> None:
    activation = {"a.b.c": "yeah", "a.b": {"c": "oops"}}
    assert cel.compile("a.b.c").run(activation) == "yeah"
    assert cel.compile("a.b.c").run({"a.b": {"c": "map"}}) == "map"
    assert cel.compile("a.b.c").run({"a": {"b": {"c": "nested"}}}) == "nested"
