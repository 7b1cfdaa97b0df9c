"""Schema phase: the published JSON Schemas, and validation errors turned into actionable lines."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_NAMES = ("policy.v1.json", "policy.v2.json", "request.v1.json", "request.v2.json", "cases.v1.json", "config.v1.json",
                "decision.v1.json", "outcome.v1.json", "properties.v1.json", "remedies.v1.json")


@cache
def load_schema(name: str) -> dict[str, Any]:
    if name not in SCHEMA_NAMES:
        raise KeyError(name)
    text = resources.files("facegate").joinpath("schemas", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    v: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return v


def pointer_of(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def violations(name: str, instance: Any) -> Iterator[tuple[str, str]]:
    """Yield ``(json_pointer, one-line message)`` for every violation, most specific first."""
    yield from _violations(validator(name), instance)


def validator_of(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator for a schema built at run time (a merged request contract)."""
    cls = jsonschema.validators.validator_for(schema)
    v: jsonschema.protocols.Validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return v


def violations_with(v: jsonschema.protocols.Validator, instance: Any) -> Iterator[tuple[str, str]]:
    """Like :func:`violations`, with a validator from :func:`validator_of`."""
    yield from _violations(v, instance)


def _violations(v: jsonschema.protocols.Validator, instance: Any) -> Iterator[tuple[str, str]]:
    for error in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.path))):
        yield from _explain(error)


def _explain(error: jsonschema.ValidationError) -> Iterator[tuple[str, str]]:
    where = pointer_of(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        for key in sorted(set(error.instance) - set(allowed)):
            hint = difflib.get_close_matches(key, allowed, n=1)
            tip = f"; did you mean `{hint[0]}`?" if hint else f"; allowed: {', '.join(allowed)}"
            yield f"{where}/{key}", f"unknown key `{key}`{tip}"
        return
    if error.validator == "required":
        yield where, str(error.message).replace("'", "`", 2).replace(" is a required property", " is required")
        return
    if error.validator == "enum":
        choices = list(error.validator_value) if isinstance(error.validator_value, (list, tuple)) else []
        options = ", ".join(f"`{o}`" for o in choices)
        suggestion = ""
        if isinstance(error.instance, str):
            near = difflib.get_close_matches(error.instance, [str(o) for o in choices], n=1)
            suggestion = f"; did you mean `{near[0]}`?" if near else ""
        yield where, f"`{_short(error.instance)}` is not one of {options}{suggestion}"
        return
    if error.validator == "const":
        yield where, f"must be `{error.validator_value}`, not `{_short(error.instance)}`"
        return
    if error.validator == "type":
        yield where, f"`{_short(error.instance)}` has the wrong type; expected {error.validator_value}"
        return
    if error.validator in ("oneOf", "anyOf") and error.context:
        # report the closest branch instead of the generic "is not valid under any of"
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            yield from _explain(best)
            return
    message = str(error.message).splitlines()[0]
    yield where, message[0].lower() + message[1:] if message else "invalid value"
