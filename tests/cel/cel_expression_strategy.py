"""Hypothesis strategies for random CEL expressions over a small activation schema.

Expressions are fully parenthesised text covering the supported features: literals of
every type (with int64/uint64 edges), variables and field paths, every operator, ``has``,
the ternary, indexing, list and map literals, string functions, conversions, ``type``,
timestamps and durations, and the macros.  They are built type-blind on purpose: most
mix types, which is where error values and error absorption get exercised.

Left out, each a known difference that is not a bug on either side (see the report):
``string()`` of a computed value (cel-python prints doubles as Python does, ``3.0``,
cel-go and facegate as Go does, ``3``); ``type()`` of a computed value (cel-python leaks
Python's ``str``/``list`` classes from ``+``); sub-microsecond timestamps; double map keys.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "request": {
            "type": "object",
            "properties": {
                "operation": {"enum": ["detect", "verify", "identify", "analyze"]},
                "attributes": {"type": "array", "items": {"enum": ["age", "race", "emotion"]}, "maxItems": 4},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "score": {"type": "number"},
                "flag": {"type": "boolean"},
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "nested": {
                    "type": "object",
                    "properties": {
                        "x": {"type": "integer"},
                        "y": {"type": "string"},
                        "z": {"type": "boolean"},
                    },
                },
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "items": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "properties": {"x": {"type": "integer"}, "y": {"type": "string"}},
                    },
                },
            },
        },
        "params": {
            "type": "object",
            "properties": {
                "limit": {"type": "integer"},
                "allowed": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

PATHS = [
    "request",
    "request.operation",
    "request.attributes",
    "request.age",
    "request.score",
    "request.flag",
    "request.name",
    "request.tags",
    "request.nested",
    "request.nested.x",
    "request.nested.y",
    "request.nested.z",
    "request.counts",
    "request.items",
    "params",
    "params.limit",
    "params.allowed",
    "missing_variable",
]
FIELDS = ["x", "y", "z", "name", "operation", "age", "nested", "k"]
INTS = ["0", "1", "-1", "2", "7", "42", "-5", "100000", "9223372036854775807", "-9223372036854775808", "0x1f"]
UINTS = ["0u", "1u", "2u", "7u", "18446744073709551615u"]
DOUBLES = ["0.0", "1.0", "-1.5", "2.5", "3.0", "1e300", "-0.0", ".5"]
STRINGS = [
    '""',
    '"a"',
    '"abc"',
    '"analyze"',
    '"race"',
    '"A"',
    '"1"',
    '"-2"',
    '"3.5"',
    '"true"',
    '"t"',
    '"é"',
    '"a.b"',
    "'x'",
    'r"\\d"',
    '"x"',
    '"age"',
]
OTHER = ["true", "false", "null", 'b"ab"', 'b""', "[]", "{}"]
PATTERNS = ['"a"', '"^a"', '"b+"', '"[0-9]"', '"^$"', '"é"', '"a|b"']
TIMES = [
    'timestamp("2009-02-13T23:31:30Z")',
    'timestamp("2020-01-01T00:00:00+08:00")',
    'duration("60s")',
    'duration("1h30m")',
    'duration("-1.5s")',
]
ACCESSORS = [
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
]
TYPES = ["int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type"]
VARIABLES = ["x", "y", "e", "request"]
STRING_SOURCES = ["true", 'b"ab"', 'b"\\377"', 'duration("60s")', 'timestamp("2009-02-13T23:31:30Z")']


@st.composite
def leaves(draw: st.DrawFn, scope: tuple[str, ...]) -> str:
    pools = [INTS, UINTS, DOUBLES, STRINGS, OTHER, PATHS, PATHS, TIMES]
    if scope:
        pools += [list(scope), list(scope), [f"{v}.{f}" for v in scope for f in ("x", "y")]]
    return draw(st.sampled_from(draw(st.sampled_from(pools))))


def _p(text: str) -> str:
    return f"({text})"


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0, scope: tuple[str, ...] = ()) -> str:
    if depth >= 4 or draw(st.integers(0, 9)) < 3:
        return draw(leaves(scope))
    sub = expressions(depth + 1, scope)
    kind = draw(
        st.sampled_from(
            [
                "unary",
                "arith",
                "compare",
                "compare",
                "in",
                "logic",
                "logic",
                "ternary",
                "index",
                "select",
                "has",
                "list",
                "map",
                "call",
                "convert",
                "type",
                "macro",
                "macro",
                "time",
            ]
        )
    )
    if kind == "unary":
        return draw(st.sampled_from(["!", "-"])) + _p(draw(sub))
    if kind == "arith":
        return f"{_p(draw(sub))} {draw(st.sampled_from(['+', '-', '*', '/', '%']))} {_p(draw(sub))}"
    if kind == "compare":
        return f"{_p(draw(sub))} {draw(st.sampled_from(['==', '!=', '<', '<=', '>', '>=']))} {_p(draw(sub))}"
    if kind == "in":
        return f"{_p(draw(sub))} in {_p(draw(sub))}"
    if kind == "logic":
        op = draw(st.sampled_from([" && ", " || "]))
        return op.join(_p(draw(sub)) for _ in range(draw(st.integers(2, 3))))
    if kind == "ternary":
        return f"{_p(draw(sub))} ? {_p(draw(sub))} : {_p(draw(sub))}"
    if kind == "index":
        key = draw(st.one_of(st.sampled_from(["0", "1", "2", "-1", '"x"', '"k"', "1u", "0.0", "true"]), sub))
        return f"{_p(draw(sub))}[{key}]"
    if kind == "select":
        return f"{_p(draw(sub))}.{draw(st.sampled_from(FIELDS))}"
    if kind == "has":
        base = draw(
            st.sampled_from([p for p in PATHS if p != "missing_variable"] + list(scope) or ["request"])
        )
        return f"has({base}.{draw(st.sampled_from(FIELDS))})"
    if kind == "list":
        return "[" + ", ".join(draw(sub) for _ in range(draw(st.integers(0, 3)))) + "]"
    if kind == "map":
        keys = draw(st.lists(st.sampled_from(['"x"', '"k"', '"y"', "1", "2", "1u", "true"]), max_size=3))
        return "{" + ", ".join(f"{k}: {draw(sub)}" for k in keys) + "}"
    if kind == "call":
        target = _p(draw(sub))
        name = draw(st.sampled_from(["size", "size()", "startsWith", "endsWith", "contains", "matches"]))
        if name == "size":
            return f"size({target})"
        if name == "size()":
            return f"{target}.size()"
        if name == "matches":
            return f"{target}.matches({draw(st.sampled_from(PATTERNS))})"
        argument = draw(st.one_of(st.sampled_from(STRINGS), sub))
        return f"{target}.{name}({argument})"
    if kind == "convert":
        name = draw(st.sampled_from(["int", "uint", "double", "bool", "bytes", "dyn", "string"]))
        if name == "string":
            return f"string({draw(st.sampled_from(INTS + UINTS + STRINGS + STRING_SOURCES))})"
        return f"{name}({draw(sub)})"
    if kind == "time":
        accessor = draw(st.sampled_from(ACCESSORS))
        zone = draw(st.sampled_from(["", '"UTC"', '"+08:00"', '"Asia/Shanghai"', '"-02:30"']))
        return f"{_p(draw(st.one_of(st.sampled_from(TIMES), sub)))}.{accessor}({zone})"
    if kind == "type":
        leaf = draw(st.sampled_from(INTS + UINTS + DOUBLES + STRINGS + OTHER + PATHS + list(scope)))
        return f"type({leaf}) == {draw(st.sampled_from(TYPES))}"
    # macro
    var = draw(st.sampled_from(VARIABLES))
    target = draw(
        st.one_of(
            st.sampled_from(
                [
                    "request.tags",
                    "request.attributes",
                    "request.items",
                    "request.counts",
                    "params.allowed",
                    "[1, 2, 3]",
                    '["a", "b"]',
                    "[]",
                    '{"x": 1, "y": 2}',
                    "request.name",
                ]
            ),
            sub,
        )
    )
    body = expressions(depth + 1, (*scope, var))
    macro = draw(st.sampled_from(["all", "exists", "exists_one", "map", "map3", "filter"]))
    if macro == "map3":
        return f"{_p(target)}.map({var}, {draw(body)}, {draw(body)})"
    return f"{_p(target)}.{macro}({var}, {draw(body)})"
