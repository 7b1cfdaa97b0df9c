"""The checker's type model: CEL types, literal types, and types read from a JSON Schema.

Types from the schema follow a draft 2020-12 subset (``type``, ``properties``,
``additionalProperties``, ``enum``/``const``, ``items``, ``maxItems``, ``maxProperties``, local
``$ref``/``$defs``); anything the schema leaves open is ``dyn``.  Used by :mod:`._check`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._values import CelType, Duration, Timestamp, UInt


@dataclass(frozen=True, eq=False)
class T:
    """A static type.  ``kind`` is a CEL type name, ``number`` (int or double: JSON
    Schema's ``number``), ``object`` (a schema object: a map with known fields) or ``dyn``."""

    kind: str
    elem: T | None = None  # list element
    key: T | None = None  # map key
    value: T | None = None  # map value, or an object's undeclared properties (None: closed)
    fields: Mapping[str, T] | None = None  # object properties
    bound: int | None = None  # maxItems / maxProperties / literal size
    enum: frozenset[Any] | None = None
    where: str = ""  # the dotted path it came from, for messages

    def describe(self) -> str:
        if self.kind == "list" and self.elem is not None and self.elem.kind != "dyn":
            return f"list({self.elem.describe()})"
        if self.kind == "object":
            return "map"
        if self.kind == "number":
            return "double"
        return self.kind


DYN: Final = T("dyn")
BOOL: Final = T("bool")
INT: Final = T("int")
UINT: Final = T("uint")
DOUBLE: Final = T("double")
STRING: Final = T("string")
BYTES: Final = T("bytes")
NULL: Final = T("null_type")
TYPE: Final = T("type")
TIMESTAMP: Final = T("timestamp")
DURATION: Final = T("duration")
_NUMERIC: Final = frozenset(["int", "uint", "double", "number"])
_ORDERED: Final = _NUMERIC | {"string", "bytes", "bool", "timestamp", "duration"}
_MAPLIKE: Final = frozenset(["map", "object"])
_SIMPLE: Final = {
    t.kind: t for t in (BOOL, INT, UINT, DOUBLE, STRING, BYTES, NULL, TYPE, TIMESTAMP, DURATION, DYN)
}
_SIMPLE["list"] = T("list", elem=DYN)
_SIMPLE["map"] = T("map", key=DYN, value=DYN)
_SIMPLE["number"] = T("number")
_JSON_TYPES: Final = {
    "string": STRING,
    "integer": INT,
    "number": T("number"),
    "boolean": BOOL,
    "null": NULL,
}


#: The checker's names for literal values (``_values._TYPE_NAMES`` is the run time's, with lists,
#: maps and the protobuf names of timestamps and durations).
_LITERAL_KINDS: Final[dict[type, str]] = {
    bool: "bool",
    int: "int",
    UInt: "uint",
    float: "double",
    str: "string",
    bytes: "bytes",
    type(None): "null_type",
    Timestamp: "timestamp",
    Duration: "duration",
    CelType: "type",
}


def literal_type(value: Any) -> T:
    return _SIMPLE[_LITERAL_KINDS.get(type(value), "dyn")]


class SchemaTypes:
    """Converts the activation's JSON Schema into :class:`T` values."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def convert(self, schema: Any, where: str, depth: int = 0) -> T:
        if not isinstance(schema, Mapping) or depth > 32:
            return T("dyn", where=where)
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self.convert(self._resolve(ref), where, depth + 1)
        for combinator in ("allOf",):
            parts = schema.get(combinator)
            if isinstance(parts, list) and len(parts) == 1:
                return self.convert(parts[0], where, depth + 1)
        values = schema.get("enum", [schema["const"]] if "const" in schema else None)
        if isinstance(values, list) and values:
            kinds = {literal_type(v).kind for v in values}
            common = kinds.pop() if len(kinds) == 1 else "dyn"
            return T(
                common if common in _SIMPLE else "dyn",
                enum=frozenset(v for v in values if _hashable(v)),
                where=where,
            )
        kind = schema.get("type")
        if isinstance(kind, list):  # a union of JSON types: dyn, unless it is just one
            kind = kind[0] if len(kind) == 1 else None
        if kind == "object" or (kind is None and "properties" in schema):
            props = schema.get("properties", {})
            fields = {
                name: self.convert(sub, f"{where}.{name}" if where else name, depth + 1)
                for name, sub in (props.items() if isinstance(props, Mapping) else ())
            }
            extra = schema.get("additionalProperties", True)
            value: T | None
            if extra is False:
                value = None
            elif isinstance(extra, Mapping):
                value = self.convert(extra, f"{where}.*", depth + 1)
            else:
                value = DYN
            bound = schema.get("maxProperties")
            if value is None and bound is None:
                bound = len(fields)
            return T(
                "object",
                fields=fields,
                value=value,
                key=STRING,
                bound=bound if isinstance(bound, int) else None,
                where=where,
            )
        if kind == "array":
            items = schema.get("items")
            elem = self.convert(items, f"{where}[]", depth + 1) if isinstance(items, Mapping) else DYN
            bound = schema.get("maxItems")
            return T("list", elem=elem, bound=bound if isinstance(bound, int) else None, where=where)
        if isinstance(kind, str) and kind in _JSON_TYPES:
            base = _JSON_TYPES[kind]
            return T(base.kind, where=where)
        return T("dyn", where=where)

    def _resolve(self, ref: str) -> Any:
        return resolve_pointer(ref, self.root)  # remote references are not followed: the type is dyn


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def resolve_pointer(ref: Any, root: Mapping[str, Any]) -> Any:
    """The schema node a local ``$ref`` (``#/$defs/x``) names in ``root``; ``None`` for a remote
    reference or a pointer that names nothing."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
