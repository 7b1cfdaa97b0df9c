"""The facts a request can state, read from its JSON Schema: one :class:`Leaf` per field.

Remedies (which values to try) and the SMT translation (which variables and domains) both
take their vocabularies from here, so a pack that declares facts of its own is covered as
soon as its schema says what they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: Facts a deployment can change by acting (obtain consent, put up signs, discard the image,
#: complete the assessment ...).  Everything else -- the operation and purpose, where and on whom
#: it runs, who runs it, the legal ground -- is a fact about the world a remedy must not alter.
#: Prefixes, for the request contract's own fields; a pack lists its own (pack-declared facts
#: included) in ``remedies.yaml`` (:func:`actionable_for`), which then replaces this default.
ACTIONABLE: tuple[tuple[str, ...], ...] = (
    ("consent",),
    ("alternative", "offered"),
    ("storage",),
    ("review", "human_review"),
    ("place", "signage"),
    ("capture", "purpose_prompt_shown"),
    ("capture", "mode"),  # cooperative capture instead of remote, passive capture
    ("actor", "pia"),
    ("actor", "filing"),
)


@dataclass(frozen=True)
class Leaf:
    """One scalar or list field: ``kind`` is ``enum``, ``bool``, ``int``, ``string`` or ``list``."""

    path: tuple[str, ...]
    kind: str
    values: tuple[Any, ...] = ()  # enum values (for a list: its item values)
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    max_items: int | None = None
    required: bool = False
    supported: bool = True  # False: a shape the analysis does not model (reported, never assumed)

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def actionable(self) -> bool:
        return any(self.path[: len(p)] == p for p in ACTIONABLE)

    def actionable_in(self, prefixes: tuple[tuple[str, ...], ...]) -> bool:
        return any(self.path[: len(p)] == p for p in prefixes)


REMEDIES_FILE = "remedies.yaml"


def actionable_for(policy: Any) -> tuple[tuple[str, ...], ...]:
    """The pack's ``remedies.yaml`` list of actionable facts, or :data:`ACTIONABLE`.

    Raises :class:`facegate.errors.PolicyError` (file, line, pointer) for a malformed file.
    """
    from pathlib import Path

    from .. import _schema
    from .._yaml import load_yaml
    from ..errors import PolicyError

    root = Path(policy.pack.root)
    path = (root if root.is_dir() else root.parent) / REMEDIES_FILE
    if not path.is_file():
        return ACTIONABLE
    doc, problems = load_yaml(path, str(path))
    if doc is None:
        raise PolicyError(problems)
    problems = [*problems, *(doc.problem(p, m) for p, m in _schema.violations("remedies.v1.json", doc.data))]
    if problems:
        raise PolicyError(problems)
    return tuple(tuple(item.split(".")) for item in doc.data["actionable"])


@dataclass(frozen=True)
class Obj:
    path: tuple[str, ...]
    required: bool


def walk(schema: Mapping[str, Any]) -> tuple[list[Leaf], list[Obj]]:
    """Every leaf field and every nested object of the request schema (``$schema`` skipped)."""
    leaves: list[Leaf] = []
    objects: list[Obj] = []
    _walk(schema, (), True, leaves, objects)
    return leaves, objects


def _walk(node: Mapping[str, Any], path: tuple[str, ...], required: bool, leaves: list[Leaf], objects: list[Obj]) -> None:
    needed = set(node.get("required", ()))
    for name, sub in node.get("properties", {}).items():
        if not path and name == "$schema":
            continue
        p = (*path, name)
        req = name in needed
        if sub.get("type") == "object" or "properties" in sub:
            objects.append(Obj(p, req))
            _walk(sub, p, req, leaves, objects)
        else:
            leaves.append(_leaf(p, sub, req))


def _leaf(path: tuple[str, ...], sub: Mapping[str, Any], required: bool) -> Leaf:
    if "enum" in sub:
        return Leaf(path, "enum", tuple(sub["enum"]), required=required)
    kind = sub.get("type")
    if kind == "boolean":
        return Leaf(path, "bool", (False, True), required=required)
    if kind == "integer":
        return Leaf(path, "int", minimum=sub.get("minimum"), maximum=sub.get("maximum"), required=required)
    if kind == "string":
        return Leaf(path, "string", max_length=sub.get("maxLength"), pattern=sub.get("pattern"), required=required)
    if kind == "array":
        items = sub.get("items", {})
        ok = "enum" in items and bool(sub.get("uniqueItems"))
        return Leaf(path, "list", tuple(items.get("enum", ())), max_items=sub.get("maxItems"), required=required, supported=ok)
    return Leaf(path, str(kind), required=required, supported=False)


def get(request: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = request
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False, None
        node = node[key]
    return True, node


def with_changes(request: Mapping[str, Any], changes: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """A copy of ``request`` with each path set to its value (:data:`ABSENT` removes it)."""
    out: dict[str, Any] = _copy(request)
    for path, value in changes.items():
        node = out
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        if value is ABSENT:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = list(value) if isinstance(value, tuple) else value
    return out


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def iter_leaves_of(leaves: list[Leaf], paths: frozenset[tuple[str, ...]]) -> Iterator[Leaf]:
    """The leaves a set of referenced paths touches (a path to an object touches all below it)."""
    for leaf in leaves:
        if any(leaf.path[: len(p)] == p or p[: len(leaf.path)] == leaf.path for p in paths):
            yield leaf
