"""The compact expression tree the checker and the code generator walk.

cel-python's lark tree has ten grammar levels per operator; this tree has one node per
CEL construct, macros already recognised, ``&&``/``||`` chains flattened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias


@dataclass(frozen=True, slots=True, eq=False)
class Lit:
    value: Any
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Ident:
    name: str
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Select:
    operand: Node
    field: str
    line: int  # of the field name
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Has:
    """``has(operand.field)``: a key-presence test on ``operand``."""

    operand: Node
    field: str
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Index:
    operand: Node
    index: Node
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Call:
    """A function call ``name(args)``, or ``target.name(args)`` when ``target`` is set."""

    name: str
    target: Node | None
    args: tuple[Node, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class ListLit:
    items: tuple[Node, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class MapLit:
    entries: tuple[tuple[Node, Node], ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Logic:
    """An ``&&`` (``op == "&&"``) or ``||`` chain of two or more operands."""

    op: str
    operands: tuple[Node, ...]
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Unary:
    op: str  # "!" or "-"
    operand: Node
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Binary:
    op: str  # == != < <= > >= in + - * / %
    left: Node
    right: Node
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Cond:
    cond: Node
    then: Node
    otherwise: Node
    line: int
    column: int


@dataclass(frozen=True, slots=True, eq=False)
class Comprehension:
    """A macro over a list or map.

    ``kind`` is one of ``all``, ``exists``, ``exists_one``, ``map``, ``filter``,
    ``transformList``, ``transformMap``.  ``var2`` is set for the two-variable forms
    (index or key, then value).  ``filter`` is the optional predicate of ``map`` and the
    transforms; ``body`` is the predicate or the produced value.
    """

    kind: str
    range: Node
    var: str
    var2: str | None
    body: Node
    filter: Node | None
    line: int
    column: int


Node: TypeAlias = (
    Lit
    | Ident
    | Select
    | Has
    | Index
    | Call
    | ListLit
    | MapLit
    | Logic
    | Unary
    | Binary
    | Cond
    | Comprehension
)
