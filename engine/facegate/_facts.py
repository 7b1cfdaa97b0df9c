"""Schema phase, v2: facegate's core request envelope merged with the facts packs declare.

A v2 pack declares the request facts it reads (``facts:``, restricted JSON Schema fragments with a
description per language) and decide-only operations (``operations:``).  The request contract a
condition is checked against, and a request validated against, is the core envelope
(``request.v2.json``) with every declaration of the packs loaded together merged in.

Merging is structural: an object fact that names an existing object adds properties to it; any
other fact that names an existing field must be the same schema (descriptions aside), or the
load fails naming both declarations.  The core's own fields cannot be redefined.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _schema
from ._yaml import YamlDocument, escape_pointer_token
from .errors import Problem

CORE = "facegate core (request.v2.json)"
#: Keys of a fact that only document it; everything else is its shape.
_DOC_KEYS = frozenset({"description", "values"})


@dataclass(frozen=True, slots=True)
class Declaration:
    """The facts and operations one pack declares, and where (for problems naming both sides)."""

    owner: str  # the pack id
    doc: YamlDocument | None
    facts: Mapping[str, Any]
    operations: Mapping[str, Any]
    language: str  # the language whose descriptions go into the JSON Schema


def core_operations() -> tuple[str, ...]:
    """The operations the gate can execute (the core envelope's ``operation`` enum)."""
    return tuple(_schema.load_schema("request.v2.json")["properties"]["operation"]["enum"])


def to_json_schema(fact: Mapping[str, Any], language: str) -> dict[str, Any]:
    """One declared fact as plain JSON Schema: descriptions in ``language``, objects closed."""
    out: dict[str, Any] = {}
    for key, value in fact.items():
        if key == "description":
            out["description"] = _pick(value, language)
        elif key == "values":
            continue
        elif key == "properties":
            out["properties"] = {k: to_json_schema(v, language) for k, v in value.items()}
        elif key == "items":
            out["items"] = to_json_schema(value, language)
        else:
            out[key] = copy.deepcopy(value)
    if out.get("type") == "object" or "properties" in out:
        out["additionalProperties"] = False
    return out


def _pick(texts: Any, language: str) -> str:
    if isinstance(texts, Mapping) and texts:
        return str(texts.get(language) or texts.get("en") or next(iter(texts.values())))
    return str(texts)


def _shape(schema: Any) -> Any:
    """A schema without its documentation, for comparing two declarations."""
    if isinstance(schema, Mapping):
        return {k: _shape(v) for k, v in schema.items() if k not in _DOC_KEYS}
    return schema


class _Merge:
    def __init__(self) -> None:
        self.schema: dict[str, Any] = copy.deepcopy(_schema.load_schema("request.v2.json"))
        self.schema.pop("$id", None)
        self.schema["title"] = "facegate request: core envelope and pack facts"
        # where each field came from: JSON pointer into the request -> (owner, doc, pointer in doc)
        self.origin: dict[str, tuple[str, YamlDocument | None, str]] = {}
        for name, field in self.schema["properties"].items():
            self.origin["/" + name] = (CORE, None, "")
            for sub in field.get("properties", {}):
                self.origin[f"/{name}/{sub}"] = (CORE, None, "")
        self.problems: list[Problem] = []

    def add(self, decl: Declaration) -> None:
        for name, fact in decl.facts.items():
            self.field(self.schema, "/" + escape_pointer_token(name), name, fact, decl, "/facts/" + escape_pointer_token(name))
        ops = self.schema["properties"]["operation"]["enum"]
        for name in decl.operations:
            where = "/operations/" + escape_pointer_token(name)
            key = "operation:" + name
            if name in ops and self.origin.get(key, (CORE,))[0] == CORE:
                self._problem(decl, where, f"operation `{name}` is a core operation; packs declare only operations the gate does not execute")
                continue
            if name not in ops:
                ops.append(name)
                self.origin[key] = (decl.owner, decl.doc, where)

    def field(self, parent: dict[str, Any], ptr: str, name: str, fact: Mapping[str, Any], decl: Declaration, where: str) -> None:
        props = parent.setdefault("properties", {})
        new = to_json_schema(fact, decl.language)
        if name not in props:
            props[name] = new
            self.claim(ptr, fact, decl, where)
            return
        old = props[name]
        owner, _, _ = self.origin.get(ptr, (CORE, None, ""))
        if old.get("type") == "object" and new.get("type") == "object":
            for sub, sub_fact in fact.get("properties", {}).items():
                token = escape_pointer_token(sub)
                self.field(old, f"{ptr}/{token}", sub, sub_fact, decl, f"{where}/properties/{token}")
            return
        if owner == CORE:
            self._problem(decl, where, f"fact `{_dotted(ptr)}` is part of facegate's core request envelope and cannot be redefined")
        elif _shape(old) != _shape(new):
            other = self.origin[ptr]
            there = f"`{other[1].path}` at {other[2]}" if other[1] is not None else other[2]
            self._problem(decl, where, f"fact `{_dotted(ptr)}` is declared differently by pack `{other[0]}` ({there}): "
                          f"{_brief(old)} here is {_brief(new)}")

    def claim(self, ptr: str, fact: Mapping[str, Any], decl: Declaration, where: str) -> None:
        """Record ``decl`` as the origin of a new field and of everything inside it."""
        self.origin[ptr] = (decl.owner, decl.doc, where)
        for sub, sub_fact in fact.get("properties", {}).items():
            token = escape_pointer_token(sub)
            self.claim(f"{ptr}/{token}", sub_fact, decl, f"{where}/properties/{token}")

    def _problem(self, decl: Declaration, where: str, message: str) -> None:
        if decl.doc is not None:
            self.problems.append(decl.doc.problem(where, message))
        else:
            self.problems.append(Problem(decl.owner, None, None, where, message))


def _dotted(ptr: str) -> str:
    return ".".join(t.replace("~1", "/").replace("~0", "~") for t in ptr.strip("/").split("/"))


def _brief(schema: Mapping[str, Any]) -> str:
    text = json.dumps(_shape(schema), sort_keys=True, ensure_ascii=False)
    return f"`{text if len(text) <= 80 else text[:77] + '...'}`"


def merged_schema(declarations: Iterable[Declaration]) -> tuple[dict[str, Any], list[Problem]]:
    """The request schema of packs loaded together, and every conflict between their declarations."""
    merge = _Merge()
    for decl in declarations:
        merge.add(decl)
    return merge.schema, merge.problems


def declaration_of(doc: YamlDocument, owner: str, language: str) -> Declaration:
    """The facts and operations declared in a pack's ``pack`` document."""
    return Declaration(owner, doc, doc.data.get("facts", {}), doc.data.get("operations", {}), language)


def fields(schema: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Every field of a request schema as ``(dotted.name, schema)``, depth first."""
    for key, sub in schema.get("properties", {}).items():
        if key == "$schema":
            continue
        yield prefix + key, sub
        if sub.get("type") == "object":
            yield from fields(sub, prefix + key + ".")
