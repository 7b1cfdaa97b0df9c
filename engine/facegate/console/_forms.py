"""The playground's form, generated from the request schema, and the request read back from it.

Every property of the schema becomes a labelled control named by its dotted path
(``place.signage``): an ``enum`` a select, a boolean a three-way select (not given / true / false:
an absent fact and a false one decide differently), a number a number field, a string a text
field, an array of ``enum`` values a group of checkboxes, an object a fieldset.  "Not given"
leaves the fact out of the request, so the form can build every request the schema allows
whose facts are these kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import _schema
from ..policy import Policy

NOT_GIVEN = ""


@dataclass
class Field:
    name: str  # dotted path
    label: str
    kind: str  # select | bool | number | text | multi | group
    description: str = ""
    options: list[str] = field(default_factory=list)
    required: bool = False
    children: list[Field] = field(default_factory=list)
    integer: bool = False


def request_schema(policy: Policy) -> dict[str, Any]:
    """The request schema the pack decides on: its merged one (pack-declared facts) if it has one."""
    merged = getattr(policy, "request_schema", None) or getattr(policy.pack, "request_schema", None)
    return dict(merged) if isinstance(merged, Mapping) else _schema.load_schema("request.v1.json")


def fields(schema: Mapping[str, Any], prefix: str = "") -> list[Field]:
    out: list[Field] = []
    required = set(schema.get("required", ()))
    for key, sub in schema.get("properties", {}).items():
        if key == "$schema" or not isinstance(sub, Mapping):
            continue
        name = prefix + key
        label = key.replace("_", " ")
        desc = str(sub.get("description", ""))
        kind = sub.get("type")
        if "enum" in sub:
            out.append(Field(name, label, "select", desc, [str(v) for v in sub["enum"]], key in required))
        elif kind == "boolean":
            out.append(Field(name, label, "bool", desc, ["true", "false"], key in required))
        elif kind in ("integer", "number"):
            out.append(Field(name, label, "number", desc, required=key in required, integer=kind == "integer"))
        elif kind == "string":
            out.append(Field(name, label, "text", desc, required=key in required))
        elif kind == "array" and isinstance(sub.get("items"), Mapping) and "enum" in sub["items"]:
            out.append(Field(name, label, "multi", desc, [str(v) for v in sub["items"]["enum"]], key in required))
        elif kind == "object":
            out.append(Field(name, label, "group", desc, children=fields(sub, name + ".")))
    return out


def values_of(request: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a request into ``{dotted path: value}`` to prefill the form."""
    out: dict[str, Any] = {}
    for key, value in request.items():
        if isinstance(value, Mapping):
            out.update(values_of(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def request_from(form: Any, schema_fields: list[Field]) -> tuple[dict[str, Any], list[str]]:
    """The request the submitted form describes, and the problems reading it (bad numbers)."""
    request: dict[str, Any] = {}
    problems: list[str] = []

    def put(path: str, value: Any) -> None:
        node = request
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    def walk(items: list[Field]) -> None:
        for f in items:
            if f.kind == "group":
                walk(f.children)
                continue
            if f.kind == "multi":
                chosen = [v for v in form.getlist(f.name) if v in f.options]
                if chosen or form.get(f.name + ".__empty") == "on":
                    put(f.name, chosen)
                continue
            raw = (form.get(f.name) or "").strip()
            if raw == NOT_GIVEN:
                continue
            if f.kind == "bool":
                if raw in ("true", "false"):
                    put(f.name, raw == "true")
            elif f.kind == "number":
                try:
                    put(f.name, int(raw) if f.integer else float(raw))
                except ValueError:
                    problems.append(f"`{f.name}`: `{raw}` is not a {'whole ' if f.integer else ''}number")
            elif f.kind == "select":
                if raw in f.options:
                    put(f.name, raw)
                else:
                    problems.append(f"`{f.name}`: `{raw}` is not one of the choices")
            else:
                put(f.name, raw)

    walk(schema_fields)
    return request, problems
