"""Check phase: types from the activation's JSON Schema, references, static limits.

Types are inferred bottom-up from literals and from the schema (a draft 2020-12 subset:
``type``, ``properties``, ``additionalProperties``, ``enum``/``const``, ``items``,
``maxItems``, ``maxProperties``, local ``$ref``/``$defs``).  Anything the schema leaves
open is ``dyn`` and checked at run time only.  The checker is deliberately lenient where
CEL's run time is well defined -- ``int`` compares with ``double`` (by value), anything
compares with ``null`` -- and strict where an expression can only ever fail or mislead:
an undefined field, an operator no overload accepts, ``==`` against a string that is not
among a field's enum values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _ast as ast
from ._errors import CELCheckError
from ._functions import BUILTINS, CelFunction, compile_regex
from ._types import (
    _MAPLIKE,
    _NUMERIC,
    _ORDERED,
    _SIMPLE,
    BOOL,
    DURATION,
    DYN,
    INT,
    STRING,
    TIMESTAMP,
    TYPE,
    SchemaTypes,
    T,
    literal_type,
)
from ._values import TYPE_DENOTATIONS, CELError, CelType


@dataclass
class Checked:
    """What the code generator and :class:`Program` need from the check phase."""

    types: dict[int, T] = field(default_factory=dict)
    #: Ident/Select chain node -> (variable name, remaining fields), for chains that start
    #: at an activation variable.  The variable name may contain dots (qualified names).
    chains: dict[int, tuple[str, tuple[str, ...]] | None] = field(default_factory=dict)
    denotations: dict[int, CelType] = field(default_factory=dict)
    references: set[tuple[str, ...]] = field(default_factory=set)  # values read
    presence: set[tuple[str, ...]] = field(default_factory=set)  # keys tested by has()
    static_calls: int = 0
    comprehension_calls: dict[int, int] = field(default_factory=dict)
    cost: int | None = 0
    unknown_functions: set[str] = field(default_factory=set)


class Converted:
    """An activation's JSON Schema converted to the checker's types once, for compiling many
    expressions against it (``compile(text, schema=Converted(schema))``, as a pack's conditions are):
    the conversion walks the whole schema, which costs more than checking a condition.  The schema
    is read now; changing it afterwards does not change the types."""

    __slots__ = ("schema", "types")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        self.types = SchemaTypes(schema).convert(schema, "")


class Checker:
    def __init__(
        self,
        schema: Mapping[str, Any] | Converted | None,
        functions: Mapping[str, CelFunction],
        check: bool,
        max_comprehension_nesting: int,
    ) -> None:
        self.check = check
        self.functions = functions
        self.max_nesting = max_comprehension_nesting
        self.variables: T | None = (schema.types if isinstance(schema, Converted)
                                    else SchemaTypes(schema).convert(schema, "") if schema is not None else None)
        self.scopes: list[dict[str, T]] = []
        self.call_counters: list[int] = [0]
        self.bounds: list[int | None] = []
        self.out = Checked()
        self.problems: list[CELCheckError] = []

    # -- entry point ---------------------------------------------------------------

    def run(self, node: ast.Node) -> Checked:
        self.visit(node, prefix=False)
        if self.problems:  # every problem of the expression in one run: the first, carrying the rest
            first, *rest = sorted(self.problems, key=lambda e: (e.line, e.column))
            first.others = tuple(rest)
            raise first
        self.out.static_calls = self.call_counters[0]
        if self.out.cost is not None:
            self.out.cost += self.out.static_calls
        return self.out

    def fail(self, message: str, node: Any, *, limit: bool = False) -> T:
        """Record a problem and go on with a dynamic type (so one mistake is not reported again
        where its value is used); a static limit stops the check at once."""
        if limit:
            raise CELCheckError(message, node.line, node.column)
        if self.check and len(self.problems) < 20:
            self.problems.append(CELCheckError(message, node.line, node.column))
        return DYN

    # -- scopes and names ------------------------------------------------------------

    def _local(self, name: str) -> T | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def _chain(self, node: ast.Node) -> tuple[list[str], list[ast.Select]] | None:
        """([root, field, ...], [select nodes]) if ``node`` is an identifier chain that is
        not rooted at a comprehension variable."""
        parts: list[str] = []
        selects: list[ast.Select] = []
        while isinstance(node, ast.Select):
            parts.append(node.field)
            selects.append(node)
            node = node.operand
        if not isinstance(node, ast.Ident) or self._local(node.name) is not None:
            return None
        parts.append(node.name)
        parts.reverse()
        selects.reverse()
        return parts, selects

    def _resolve(self, parts: list[str]) -> tuple[str, tuple[str, ...]] | None:
        """Split a chain into (variable, fields) using the schema; None: dynamic."""
        if self.variables is None:
            return None
        fields = self.variables.fields or {}
        for cut in range(len(parts), 1, -1):
            name = ".".join(parts[:cut])
            if name in fields:
                return name, tuple(parts[cut:])
        return parts[0], tuple(parts[1:])

    # -- visiting --------------------------------------------------------------------

    def visit(self, node: ast.Node, prefix: bool) -> T:
        t: T = getattr(self, "_" + type(node).__name__)(node, prefix)
        self.out.types[id(node)] = t
        return t

    def _Lit(self, node: ast.Lit, prefix: bool) -> T:
        return literal_type(node.value)

    def _Ident(self, node: ast.Ident, prefix: bool) -> T:
        local = self._local(node.name)
        if local is not None:
            return local
        return self._chain_type(node, [node.name], [], prefix)

    def _Select(self, node: ast.Select, prefix: bool) -> T:
        chain = self._chain(node)
        if chain is not None:
            return self._chain_type(node, chain[0], chain[1], prefix)
        operand = self.visit(node.operand, prefix=True)
        return self._field(operand, node.field, node)

    def _chain_type(self, node: ast.Node, parts: list[str], selects: list[ast.Select], prefix: bool) -> T:
        denoted = self._denotation(parts)
        if denoted is not None:
            self.out.denotations[id(node)] = denoted
            return TYPE
        resolved = self._record_chain(node, parts, prefix)
        if self.variables is None or resolved is None:
            return DYN
        name, fields = resolved
        declared = (self.variables.fields or {}).get(name)
        if declared is None:
            if self.variables.value is None:
                return self.fail(f"undeclared reference to `{name}`", node if not selects else _root(node))
            declared = self.variables.value
        t = declared
        for field_name, select in zip(fields, selects[len(selects) - len(fields) :]):
            t = self._field(t, field_name, select)
        return t

    def _record_chain(
        self, node: ast.Node, parts: list[str], prefix: bool
    ) -> tuple[str, tuple[str, ...]] | None:
        resolved = self._resolve(parts)
        self.out.chains[id(node)] = resolved
        if not prefix:
            self.out.references.add(tuple(parts))
        return resolved

    def _denotation(self, parts: list[str]) -> CelType | None:
        name = ".".join(parts)
        if name not in TYPE_DENOTATIONS:
            return None
        if self.variables is not None and parts[0] in (self.variables.fields or {}):
            return None
        return TYPE_DENOTATIONS[name]

    def _field(self, operand: T, name: str, node: Any) -> T:
        kind = operand.kind
        if kind == "dyn":
            return DYN
        if kind == "object":
            found = (operand.fields or {}).get(name)
            if found is not None:
                return found
            if operand.value is None:
                where = f" in `{operand.where}`" if operand.where else ""
                return self.fail(f"undefined field `{name}`{where}", node)
            return operand.value
        if kind == "map":
            if operand.key is not None and operand.key.kind not in ("dyn", "string"):
                return self.fail(f"field selection `.{name}` on a map with `{operand.key.kind}` keys", node)
            return operand.value or DYN
        return self.fail(f"type `{operand.describe()}` has no field `{name}`", node)

    def _Has(self, node: ast.Has, prefix: bool) -> T:
        operand = self.visit(node.operand, prefix=True)
        chain = self._chain(node.operand)
        if chain is not None:
            self.out.presence.add((*chain[0], node.field))
        self._field(operand, node.field, node)
        return BOOL

    def _Index(self, node: ast.Index, prefix: bool) -> T:
        literal_key = isinstance(node.index, ast.Lit) and type(node.index.value) is str
        operand = self.visit(node.operand, prefix=literal_key)
        key = self.visit(node.index, prefix=False)
        chain = self._chain(node.operand)
        if literal_key and chain is not None:
            # Recorded even under a selection: a coarser path only widens what is observed.
            self.out.references.add((*chain[0], node.index.value))  # type: ignore[union-attr]
        kind = operand.kind
        if kind == "dyn":
            return DYN
        if kind == "list":
            if key.kind not in _NUMERIC and key.kind != "dyn":
                return self.fail(f"list index must be an int, not `{key.describe()}`", node)
            return operand.elem or DYN
        if kind == "object" and literal_key:
            return self._field(operand, node.index.value, node.index)  # type: ignore[union-attr]
        if kind in _MAPLIKE:
            self._comparable(operand.key or DYN, key, "_[_]", node)
            return operand.value or DYN
        return self.fail(
            f"no matching overload for `_[_]` applied to `({operand.describe()}, {key.describe()})`", node
        )

    def _ListLit(self, node: ast.ListLit, prefix: bool) -> T:
        items = [self.visit(i, prefix=False) for i in node.items]
        kinds = {i.kind for i in items}
        elem = items[0] if len(kinds) == 1 and items[0].kind not in _MAPLIKE | {"list"} else DYN
        return T("list", elem=elem, bound=len(items))

    def _MapLit(self, node: ast.MapLit, prefix: bool) -> T:
        keys, values = [], []
        for k, v in node.entries:
            kt = self.visit(k, prefix=False)
            if kt.kind not in ("int", "uint", "bool", "string", "dyn"):
                self.fail(f"unsupported map key type `{kt.describe()}`", k)
            keys.append(kt)
            values.append(self.visit(v, prefix=False))
        key = keys[0] if len({k.kind for k in keys}) == 1 else DYN
        value = values[0] if len({v.kind for v in values}) == 1 and values[0].kind not in _MAPLIKE else DYN
        return T("map", key=key, value=value, bound=len(keys))

    def _Logic(self, node: ast.Logic, prefix: bool) -> T:
        for operand in node.operands:
            t = self.visit(operand, prefix=False)
            if t.kind not in ("bool", "dyn"):
                self.fail(f"operand of `{node.op}` must be bool, not `{t.describe()}`", operand)
        return BOOL

    def _Unary(self, node: ast.Unary, prefix: bool) -> T:
        t = self.visit(node.operand, prefix=False)
        if node.op == "!":
            if t.kind not in ("bool", "dyn"):
                return self.fail(f"no matching overload for `!_` applied to `({t.describe()})`", node)
            return BOOL
        if t.kind not in ("int", "double", "number", "dyn"):
            return self.fail(f"no matching overload for `-_` applied to `({t.describe()})`", node)
        return t if t.kind != "number" else _SIMPLE["number"]

    def _Cond(self, node: ast.Cond, prefix: bool) -> T:
        c = self.visit(node.cond, prefix=False)
        if c.kind not in ("bool", "dyn"):
            self.fail(f"condition of `?:` must be bool, not `{c.describe()}`", node.cond)
        a = self.visit(node.then, prefix=False)
        b = self.visit(node.otherwise, prefix=False)
        return a if a.kind == b.kind and a.kind not in _MAPLIKE | {"list"} else DYN

    def _comparable(self, a: T, b: T, op: str, node: Any) -> None:
        ka, kb = a.kind, b.kind
        if "dyn" in (ka, kb) or "null_type" in (ka, kb):
            return
        if (ka in _NUMERIC and kb in _NUMERIC) or (ka in _MAPLIKE and kb in _MAPLIKE) or ka == kb:
            return
        self.fail(f"no matching overload for `{op}` applied to `({a.describe()}, {b.describe()})`", node)

    def _enum_literal(self, a: T, other: ast.Node, node: Any) -> None:
        """``x == "lit"`` where ``x`` is an enum field that can never equal ``lit``."""
        if a.enum is None or not isinstance(other, ast.Lit) or type(other.value) is not str:
            return
        if other.value not in a.enum:
            choices = ", ".join(f"`{v}`" for v in sorted(map(str, a.enum)))
            where = f"`{a.where}`" if a.where else "the value"
            self.fail(f"`{other.value}` is not a possible value of {where} (one of {choices})", other)

    def _Binary(self, node: ast.Binary, prefix: bool) -> T:
        a = self.visit(node.left, prefix=False)
        b = self.visit(node.right, prefix=False)
        op = node.op
        if op in ("==", "!="):
            self._comparable(a, b, f"_{op}_", node)
            self._enum_literal(a, node.right, node)
            self._enum_literal(b, node.left, node)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if "dyn" not in (a.kind, b.kind):
                if a.kind not in _ORDERED or b.kind not in _ORDERED:
                    return self.fail(
                        f"no matching overload for `_{op}_` applied to `({a.describe()}, {b.describe()})`",
                        node,
                    )
                self._comparable(a, b, f"_{op}_", node)
            return BOOL
        if op == "in":
            return self._in(a, b, node)
        return self._arithmetic(op, a, b, node)

    def _in(self, a: T, b: T, node: ast.Binary) -> T:
        if b.kind == "list":
            elem = b.elem or DYN
            self._comparable(a, elem, "@in", node)
            self._enum_literal(elem, node.left, node)
            if isinstance(node.right, ast.ListLit):
                for item in node.right.items:
                    self._enum_literal(a, item, node)
        elif b.kind in _MAPLIKE:
            self._comparable(a, b.key or DYN, "@in", node)
        elif b.kind != "dyn":
            return self.fail(
                f"no matching overload for `@in` applied to `({a.describe()}, {b.describe()})`", node
            )
        return BOOL

    def _arithmetic(self, op: str, a: T, b: T, node: ast.Binary) -> T:
        ka, kb = a.kind, b.kind
        if "dyn" in (ka, kb):
            return DYN
        if ka in _NUMERIC and kb in _NUMERIC:
            if op == "%" and ("double" in (ka, kb)):
                return self.fail(
                    f"no matching overload for `_%_` applied to `({a.describe()}, {b.describe()})`", node
                )
            if ka == kb:
                return _SIMPLE[ka]
            if "number" in (ka, kb):
                return _SIMPLE["number"]
        elif op == "+":
            if ka == kb and ka in ("string", "bytes", "list", "duration"):
                return _SIMPLE[ka] if ka != "list" else T("list", elem=DYN)
            if {ka, kb} == {"timestamp", "duration"}:
                return TIMESTAMP
        elif op == "-":
            if ka == kb == "timestamp" or ka == kb == "duration":
                return DURATION
            if ka == "timestamp" and kb == "duration":
                return TIMESTAMP
        return self.fail(
            f"no matching overload for `_{op}_` applied to `({a.describe()}, {b.describe()})`", node
        )

    # -- calls -------------------------------------------------------------------------

    def _Call(self, node: ast.Call, prefix: bool) -> T:
        args = [
            self.visit(a, prefix=False)
            for a in ((node.target,) if node.target is not None else ()) + node.args
        ]
        if node.name != "dyn":
            self.call_counters[-1] += 1
        custom = self.functions.get(node.name)
        if custom is not None:
            return self._custom_call(custom, args, node)
        builtin = BUILTINS.get(node.name)
        if (
            builtin is None
            or (node.target is not None and not builtin.member)
            or (node.target is None and not builtin.function)
        ):
            self.out.unknown_functions.add(node.name)
            style = f"`.{node.name}()`" if node.target is not None else f"`{node.name}()`"
            return self.fail(f"undeclared reference to function {style}", node)
        if node.name == "matches" and self.check:
            pattern = node.args[-1] if node.args else None
            if isinstance(pattern, ast.Lit) and type(pattern.value) is str:
                regex = compile_regex(pattern.value)
                if type(regex) is CELError:
                    return self.fail(regex.message, pattern)
        results = []
        for params, result in builtin.signatures:
            if len(params) == len(args) and all(_accepts(p, a) for p, a in zip(params, args)):
                results.append(result)
        if not results:
            types = ", ".join(a.describe() for a in args)
            return self.fail(f"no matching overload for `{node.name}` applied to `({types})`", node)
        return _SIMPLE.get(results[0], DYN) if len(set(results)) == 1 else DYN

    def _custom_call(self, fn: CelFunction, args: list[T], node: ast.Call) -> T:
        if len(args) != len(fn.arg_types) or not all(_accepts(p, a) for p, a in zip(fn.arg_types, args)):
            types = ", ".join(a.describe() for a in args)
            return self.fail(f"no matching overload for `{fn.name}` applied to `({types})`", node)
        return _SIMPLE.get(fn.result_type, DYN)

    # -- comprehensions ----------------------------------------------------------------

    def _Comprehension(self, node: ast.Comprehension, prefix: bool) -> T:
        rng = self.visit(node.range, prefix=False)
        if len(self.bounds) >= self.max_nesting:
            self.fail(
                f"comprehensions nested deeper than the limit of `{self.max_nesting}`", node, limit=True
            )
        var_t, var2_t = DYN, DYN
        if rng.kind == "list":
            var_t, var2_t = (INT, rng.elem or DYN) if node.var2 is not None else (rng.elem or DYN, DYN)
        elif rng.kind in _MAPLIKE:
            var_t = rng.key or STRING if rng.kind == "object" else rng.key or DYN
            if node.var2 is not None:
                var2_t = rng.value or DYN if rng.kind == "map" else DYN
        elif rng.kind != "dyn":
            self.fail(f"`{node.kind}` needs a list or map, not `{rng.describe()}`", node)
        scope = {node.var: var_t}
        if node.var2 is not None:
            scope[node.var2] = var2_t
        self.scopes.append(scope)
        self.bounds.append(rng.bound)
        self.call_counters.append(0)
        try:
            if node.filter is not None:
                self._predicate(node.filter, node)
            if node.kind in ("all", "exists", "exists_one", "filter"):
                self._predicate(node.body, node)
                body = BOOL
            else:
                body = self.visit(node.body, prefix=False)
        finally:
            calls = self.call_counters.pop()
            self.bounds.pop()
            self.scopes.pop()
        self.out.comprehension_calls[id(node)] = calls
        iterations = math.prod(b for b in (*self.bounds, rng.bound) if b is not None)
        if any(b is None for b in (*self.bounds, rng.bound)):
            self.out.cost = None
        elif self.out.cost is not None:
            self.out.cost += iterations * (1 + calls)
        if node.kind in ("all", "exists", "exists_one"):
            return BOOL
        if node.kind == "filter":
            return T("list", elem=var_t if node.var2 is None else var2_t, bound=rng.bound)
        if node.kind == "transformMap":
            return T("map", key=var_t, value=body, bound=rng.bound)
        return T("list", elem=body, bound=rng.bound)

    def _predicate(self, pred: ast.Node, node: ast.Comprehension) -> None:
        t = self.visit(pred, prefix=False)
        if t.kind not in ("bool", "dyn"):
            self.fail(f"predicate of `{node.kind}` must be bool, not `{t.describe()}`", pred)


def _root(node: ast.Node) -> ast.Node:
    while isinstance(node, ast.Select):
        node = node.operand
    return node


def _accepts(param: str, arg: T) -> bool:
    if param == "dyn" or arg.kind == "dyn":
        return True
    if arg.kind == "number":
        return param in ("int", "double", "uint")
    if arg.kind == "object":
        return param == "map"
    return param == arg.kind
