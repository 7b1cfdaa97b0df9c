"""The public surface of facegate.cel: API shape, errors, custom functions, threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import facegate.cel
from facegate import cel


def test_all_is_sorted_and_complete() -> None:
    assert facegate.cel.__all__ == sorted(facegate.cel.__all__)
    for name in facegate.cel.__all__:
        assert hasattr(facegate.cel, name)


def test_evaluate_returns_plain_python() -> None:
    program = cel.compile("{'ok': [1, 2.5, 'a', b'b', true, null, 3u]}")
    value = program.evaluate({})
    assert value == {"ok": [1, 2.5, "a", b"b", True, None, 3]}
    assert type(value["ok"][6]) is cel.UInt and isinstance(value["ok"][6], int)
    assert str(cel.compile("timestamp('2020-01-01T00:00:00Z')").evaluate({})) == "2020-01-01T00:00:00Z"
    assert cel.compile("duration('90s')").evaluate({}) == cel.Duration(90 * 10**9)


def test_evaluate_raises_one_error_type() -> None:
    with pytest.raises(cel.CELEvalError) as info:
        cel.compile("1 / 0").evaluate({})
    assert info.value.message == "division by zero"
    assert info.value.error == cel.CELError("division by zero")


def test_run_returns_errors_as_values() -> None:
    result = cel.compile("request.missing").run({"request": {}})
    assert type(result) is cel.CELError
    assert result.message == "no such key: `missing`"
    assert not isinstance(result, Exception)


def test_programs_are_immutable() -> None:
    program = cel.compile("1")
    with pytest.raises(AttributeError):
        program.text = "2"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cel.CELError("x").message = "y"  # type: ignore[misc]


def test_interpreter_backend_is_the_reference() -> None:
    program = cel.compile("request.operation == 'verify'", backend="interpreter")
    assert program.backend == "interpreter"
    assert program.evaluate({"request": {"operation": "verify"}}) is True
    assert type(program.run({})) is cel.CELError
    with pytest.raises(ValueError, match="unknown backend"):
        cel.compile("1", backend="fast")


def test_value_wrappers() -> None:
    assert repr(cel.UInt(3)) == "UInt(3)"
    with pytest.raises(ValueError):
        cel.UInt(-1)
    import datetime as dt

    moment = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert cel.Timestamp.from_datetime(moment).to_datetime() == moment
    assert cel.Duration.from_timedelta(dt.timedelta(seconds=1.5)).to_timedelta() == dt.timedelta(seconds=1.5)
    assert cel.Timestamp(0) < cel.Timestamp(1)


# -- custom functions -----------------------------------------------------------------


def _distance(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


FUNCTIONS = {
    "distance": cel.CelFunction("distance", _distance, ("string", "string"), "int"),
    "explode": cel.CelFunction("explode", lambda x: 1 // 0, ("int",), "int"),
    "liar": cel.CelFunction("liar", lambda x: "not an int", ("int",), "int"),
}


def test_custom_functions_global_and_member_style() -> None:
    assert cel.compile("distance('abc', 'abd')", functions=FUNCTIONS).evaluate({}) == 1
    assert cel.compile("'abc'.distance('abcd')", functions=FUNCTIONS).evaluate({}) == 1


def test_custom_functions_are_checked_at_compile_time() -> None:
    with pytest.raises(
        cel.CELCheckError, match="no matching overload for `distance` applied to `\\(string, int\\)`"
    ):
        cel.compile("distance('a', 1)", functions=FUNCTIONS)
    with pytest.raises(cel.CELCheckError, match="no matching overload"):
        cel.compile("distance('a')", functions=FUNCTIONS)


def test_custom_functions_are_checked_at_run_time() -> None:
    program = cel.compile("distance(x, 'a')", functions=FUNCTIONS)
    assert type(program.run({"x": 5})) is cel.CELError
    assert program.run({"x": "b"}) == 1


def test_custom_function_failures_are_error_values() -> None:
    assert cel.compile("explode(1)", functions=FUNCTIONS).run({}) == cel.CELError(
        "function `explode` failed: ZeroDivisionError"
    )
    result = cel.compile("liar(1)", functions=FUNCTIONS).run({})
    assert type(result) is cel.CELError and "returned `string`" in result.message
    assert cel.compile("false && explode(1) == 1", functions=FUNCTIONS).run({}) is False


def test_custom_functions_in_the_interpreter_backend() -> None:
    program = cel.compile("distance('abc', x)", functions=FUNCTIONS, backend="interpreter")
    assert program.run({"x": "xbc"}) == 1


def test_custom_function_registration_is_validated() -> None:
    with pytest.raises(ValueError, match="cannot be replaced"):
        cel.compile("1", functions={"size": cel.CelFunction("size", len, ("string",), "int")})
    with pytest.raises(ValueError, match="unknown cel type"):
        cel.CelFunction("f", len, ("text",), "int")
    with pytest.raises(ValueError, match="invalid cel function name"):
        cel.CelFunction("not-a-name", len, ("string",), "int")
    with pytest.raises(ValueError, match="is named"):
        cel.compile("1", functions={"alias": FUNCTIONS["distance"]})


def test_unknown_functions_without_check_are_run_time_errors() -> None:
    program = cel.compile("f_unknown(17) || true", check=False)
    assert program.run({}) is True
    assert cel.compile("f_unknown(17)", check=False).run({}) == cel.CELError("unbound function `f_unknown`")


# -- threads ----------------------------------------------------------------------------


def test_one_program_many_threads_each_its_own_answer() -> None:
    program = cel.compile(
        "request.n % 3 == 0 ? request.items.map(x, x * request.n) : "
        "request.items.filter(x, x % 2 == request.n % 2).map(x, x + request.n)"
    )
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def expected(n: int) -> list[int]:
        items = list(range(n % 7 + 1))
        if n % 3 == 0:
            return [x * n for x in items]
        return [x + n for x in items if x % 2 == n % 2]

    def worker(first: int) -> None:
        try:
            barrier.wait()
            for n in range(first, 4000, 16):
                budget = cel.Budget(1000)
                value = program.run({"request": {"n": n, "items": list(range(n % 7 + 1))}}, budget)
                if value != expected(n):
                    raise AssertionError(f"thread {first}: {n} -> {value}")
                results[n] = value
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 4000


def test_compiling_in_many_threads_at_once() -> None:
    texts = [f"x + {i} == {i + 1}" for i in range(64)]
    programs: list[Any] = [None] * len(texts)

    def worker(i: int) -> None:
        programs[i] = cel.compile(texts[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.run({"x": 1}) is True for p in programs)
