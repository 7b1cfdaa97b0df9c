"""Hypothesis strategies for requests: valid ones drawn from request.v1.json, and malformed ones."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from facegate._schema import load_schema

_GARBAGE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=8), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _from_schema(schema: dict[str, Any], malformed: bool) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        base = st.sampled_from(schema["enum"])
    elif schema.get("type") == "boolean":
        base = st.booleans()
    elif schema.get("type") == "integer":
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 20000)
        base = st.one_of(st.integers(lo, min(hi, lo + 30)), st.integers(lo, hi), st.sampled_from([lo, min(hi, 13), min(hi, 14), min(hi, 10000), min(hi, 10001)]))
    elif schema.get("type") == "string":
        base = st.sampled_from(["CN", "x-1", "Art. 9 of a law"]) if "pattern" not in schema else st.just("CN")
    elif schema.get("type") == "array":
        base = st.lists(_from_schema(schema["items"], False), max_size=4, unique=True)
    elif schema.get("type") == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        base = st.fixed_dictionaries(
            {k: _from_schema(v, malformed) for k, v in props.items() if k in required},
            optional={k: _from_schema(v, malformed) for k, v in props.items() if k not in required and k != "$schema"},
        )
    else:
        base = _GARBAGE
    if malformed:
        return st.one_of(base, base, base, _GARBAGE)
    return base


def requests(malformed: bool = False) -> st.SearchStrategy[Any]:
    strategy = _from_schema(load_schema("request.v1.json"), malformed)
    if malformed:
        typo = st.builds(lambda r, k: {**r, k: {}} if isinstance(r, dict) else r, strategy, st.sampled_from(["consnet", "subjct", "opration"]))
        return st.one_of(strategy, typo, _GARBAGE)
    return strategy
