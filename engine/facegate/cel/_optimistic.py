"""An optimistic, typed twin of a rule-set function, for requests the caller has validated.

The function :mod:`._shared` generates is exact for *any* activation: every field read can fail
over to ``_select_path``, every comparison tests its operand's type, every ``&&`` carries errors
along (CEL absorbs them: ``false && error`` is ``false``).  A decision runs it only after the
request passed the pack's JSON Schema, so most of those tests cannot fail.  This module generates,
for the same plan (the same folded trees, kept rules, nesting and output order), a second
function in plain Python that assumes what the schema proves and *raises* where the exact
function would do anything else:

* a field read is a plain subscript (``r['place']['type']``): a missing key raises;
* where the schema proves a value's JSON type (a string, a boolean, an object, an array) the
  type test the exact code makes before its inline fast path is left out; elsewhere the test
  stays and its other branch raises instead of calling the general runtime helper;
* ``&&``, ``||``, ``!`` and ``?:`` are Python's ``and``, ``or``, ``not`` and ``if``, on operands
  that are proven booleans or are tested to be ``True``/``False`` (anything else raises);
* anything else (custom functions, timestamps, arithmetic, indexing) is evaluated by the exact
  code generator's function for that node, and an error value raises;
* ``exists``/``all`` over a list is a loop in a helper; other comprehensions raise;
* a shared sub-expression written more than once is a local computed on first use, and a
  top-level object read through three times or more is read once, up front (``_Absent`` when
  missing: reading through it raises, as reading the key would).

So whenever the fast function *returns*, every value it computed is the exact value (an error
anywhere raised instead), and CEL's ``&&``/``||`` give the same result as Python's on booleans.
:func:`optimistic` runs it and, if it raises anything, runs the exact function instead.

The budget ends as the exact function leaves it.  The exact function charges each rule side's
call sites when it reaches the side (the same sides here: both nest rules by
:func:`._shared.next_group`), and each comprehension iteration.  The fast function adds the side
charges up in a local and takes them in its last statement; a comprehension charges per
iteration as the exact code does, memoised exactly where the exact code memoises it (if the
exact code moved deep code into helpers, where it does not memoise, comprehensions raise).  It raises at
entry unless the budget covers every side's charge, and in a comprehension as soon as it would
not any more, so no rule sees an exhausted budget on the fast path; :func:`optimistic` restores
what a comprehension charged before the fast function gave up.

What the fast function assumes, and the caller must guarantee, for each variable in
``validated``: its value is valid against that JSON Schema *as Python reads it*.  jsonschema-rs
accepts only exact ``str`` (subclasses are refused), ``bool`` and ``dict``/``list`` subclasses
for objects and arrays (tests/test_optimistic.py checks this); a ``dict`` subclass that
overrides item access to show the evaluator other values than the validator saw is outside
the assumption.  Numbers are never trusted (``1.0`` and ``IntEnum`` members pass ``integer``):
their type tests stay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from . import _ast as ast
from . import _functions as fn
from ._check import Checked
from ._compiler import CodeGen, boolish
from ._namespace import NAMESPACE
from ._shared import _MEMO_MIN, Key, _conjuncts, _Entry, next_group
from ._types import resolve_pointer
from ._values import CELError

#: JSON Schema types whose Python values the validator makes exact: string, boolean, object, array.
_PROVEN: Final = {"string": "str", "boolean": "bool", "object": "dict", "array": "list"}
_SCALARS: Final = frozenset(["str", "bool", "null"])  # plain ``==`` is CEL's across these
_LITERAL_KINDS: Final = {str: "str", bool: "bool", int: "int", type(None): "null"}
_EXACT_INT: Final = 2**53  # int literals compared plainly must be exact as floats too


_CONTAINER_READS: Final = 3


class Fallback(Exception):
    """The fast function cannot vouch for a value: the exact function decides."""


class _Absent:
    """A missing top-level object, read up front: reading through it raises, as reading the key would."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        raise Fallback

    def __contains__(self, key: Any) -> bool:
        raise Fallback


def _fail() -> Any:
    raise Fallback


def _ok(value: Any) -> Any:
    """An exact sub-function's value, unless it is an error."""
    if type(value) is CELError:
        raise Fallback
    return value


def optimistic(fast: Any, exact: Any) -> Any:
    """``run(act, budget)``: the fast function, or the exact one when the fast one raises."""

    def run(act: Any, budget: Any = None) -> Any:
        if budget is None:
            return exact(act, budget)
        steps = budget.steps
        try:
            return fast(act, budget)
        except Exception:  # noqa: BLE001 - any failure means: decide exactly, from scratch
            budget.steps = steps  # what a comprehension charged before the fast function gave up
            return exact(act, budget)

    return run


def proven_kind(schema: Any, root: Mapping[str, Any], path: tuple[str, ...], depth: int = 0) -> str | None:
    """What a valid value at ``path`` inside ``schema`` is in Python ('str', 'bool', 'dict',
    'list'), when the schema's own ``type``/``enum``/``const`` says so; ``None``: not proven."""
    if not isinstance(schema, Mapping) or depth > 32:
        return None
    if path:
        head, rest = path[0], path[1:]
        props = schema.get("properties")
        if isinstance(props, Mapping) and head in props:
            return proven_kind(props[head], root, rest, depth + 1)
        ref = resolve_pointer(schema.get("$ref"), root)
        if ref is not None:
            return proven_kind(ref, root, path, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping) and "patternProperties" not in schema:
            return proven_kind(extra, root, rest, depth + 1)
        return None
    kind = schema.get("type")
    if isinstance(kind, str) and kind in _PROVEN:
        return _PROVEN[kind]
    values = schema.get("enum", [schema["const"]] if "const" in schema else None)
    if isinstance(values, list) and values:
        kinds = {type(v) for v in values}
        if kinds == {str} or kinds == {bool}:
            return _LITERAL_KINDS[kinds.pop()]
    ref = resolve_pointer(schema.get("$ref"), root)
    return proven_kind(ref, root, (), depth + 1) if ref is not None else None




class FastGen:
    """Generates the fast function: expressions for conditions, statements for the rules."""

    def __init__(self, checked: Checked, functions: Mapping[str, fn.CelFunction], keys: dict[int, Key],
                 sizes: dict[int, int], shared: set[Key], validated: Mapping[str, Mapping[str, Any]], outlined: bool) -> None:
        self.checked = checked
        self.functions = functions
        self.keys = keys
        self.shared = shared  # memoised here exactly where the exact function memoises them
        self.outlined = outlined  # the exact function moved deep code into helpers (without memo)
        self.scopes: list[dict[str, str]] = []  # comprehension variables -> their Python names
        self.helpers: list[str] = []
        self.sizes = sizes
        self.validated = validated
        self.namespace: dict[str, Any] = {"Fallback": Fallback, "_fail": _fail, "_ok": _ok, "_U": _UNSET, "_ABSENT": _Absent(),
                                          "_SEQ": NAMESPACE["_SEQ"], "_ORD": NAMESPACE["_ORD"], "_SIZED": NAMESPACE["_SIZED"]}
        self.consts: dict[Any, str] = {}
        self.roots: dict[str, str] = {}
        self.memo: dict[Key, str] = {}
        self.sites: Counter[Key] = Counter()  # where each memoised sub-expression is written
        self.through: Counter[tuple[str, str]] = Counter()  # reads through each top-level object
        #: top-level objects read through often enough to be read once, up front, into a local
        #: (``_ABSENT`` when missing: any read through it raises, as reading the key would)
        self.containers: dict[tuple[str, str], str] = {}
        self.counter = 0
        self.lines: list[str] = []
        self.depth = 1
        self.total_steps = 0

    # -- output ------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def tmp(self, stem: str = "t") -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def const(self, value: Any) -> str:
        t = type(value)
        if value is None or t is bool or (t is int and abs(value) < 2**63) or (t is str and len(value) <= 256):
            return repr(value) if not (t is int and value < 0) else f"({value!r})"
        key = (t, value) if t in (frozenset, tuple, str, int, float) else (t, id(value))
        name = self.consts.get(key)
        if name is None:
            name = self.consts[key] = f"_k{len(self.consts)}"
            self.namespace[name] = value
        return name

    # -- the function --------------------------------------------------------------------

    def function(self, plan: list[tuple[int, ast.Node, int, ast.Node | None, int]]) -> str:
        entries = [_Entry(i, w, ws, u, us, _conjuncts(w)) for i, w, ws, u, us in plan]
        self.total_steps = sum(ws + us for _, _, ws, _, us in plan)
        body_start = len(self.lines)
        self.emit("c = 0")
        self.emit("out = []")
        self.reordered = False
        self._rules(entries, 0)
        if self.reordered:
            self.emit("out.sort()")
        self.emit("if c:")
        self.emit("    budget.steps -= c")
        self.emit("return out")
        head = []
        if self.total_steps:
            head += [f"    if budget.steps < {self.total_steps}:", "        raise Fallback"]
        head += [f"    {name} = act[{root!r}]" for root, name in self.roots.items()]
        head += [f"    {name} = {self.roots[variable]}[{field!r}] if {field!r} in {self.roots[variable]} else _ABSENT"
                 for (variable, field), name in self.containers.items()]
        if self.memo:
            self.namespace["_UNSETS"] = (_UNSET,) * len(self.memo)  # unpacked: one store per memo
            head.append("    " + ", ".join(self.memo.values()) + ", = _UNSETS")
        self.lines[body_start:body_start] = head
        return "\n".join([*self.helpers, "def _fast(act, budget):", *self.lines]) + "\n"

    def _rules(self, entries: list[_Entry], level: int) -> None:
        while entries:
            split = next_group(entries, self.keys, level)
            if split is None:
                for e in entries:
                    self._rule(e, e.rest)
                return
            group, entries, reordered = split
            self.reordered = self.reordered or reordered
            self.emit(f"if {self.boolean(group[0].rest[0])}:")
            self.depth += 1
            self._rules([e.without_first() for e in group], level + 1)
            self.depth -= 1
            # false: none of the group applies, and the exact function charged none of them

    def _rule(self, e: _Entry, conjuncts: list[ast.Node]) -> None:
        self.emit(f"# rule {e.index}")
        if e.when_steps:
            self.emit(f"c += {e.when_steps}")
        test = " and ".join(self.boolean(c) for c in conjuncts) if conjuncts else "True"
        if e.unless is None:
            self.emit(f"if {test}:")
            self.emit(f"    out.append(({e.index}, True, None))")
            return
        self.emit(f"if {test}:")
        self.depth += 1
        if e.unless_steps:
            self.emit(f"c += {e.unless_steps}")
        self.emit(f"out.append(({e.index}, True, {self.boolean(e.unless)}))")
        self.depth -= 1

    # -- expressions: (Python source, what its value is proven to be) ----------------------

    def boolean(self, node: ast.Node) -> str:
        """An expression that is the node's value, which must be ``True`` or ``False``."""
        code, kind = self.expr(node)
        if kind == "bool":
            return code
        t = self.tmp()
        return f"({t} if ({t} := {code}) is True or {t} is False else _fail())"

    def expr(self, node: ast.Node) -> tuple[str, str]:
        key = self.keys.get(id(node))
        if not self.scopes and key is not None and key in self.shared and self.sizes.get(id(node), 0) >= _MEMO_MIN:
            name = self.memo.get(key)
            if name is None:
                name = self.memo[key] = f"m{len(self.memo)}"
            self.sites[key] += 1
            code, kind = self._expr(node)
            return f"({name} if {name} is not _U else ({name} := {code}))", kind
        return self._expr(node)

    def _expr(self, node: ast.Node) -> tuple[str, str]:
        handler = getattr(self, "_" + type(node).__name__, None)
        found = handler(node) if handler is not None else None
        return found if found is not None else self.exact(node)

    def exact(self, node: ast.Node) -> tuple[str, str]:
        """The exact code generator's function for this node; an error value raises."""
        if self.scopes or _has_comprehension(node):
            return "_fail()", "dyn"  # it cannot see the loop variables / its charges are not mirrored
        gen = CodeGen(self.checked, self.functions)
        source = gen.function(False, 0, node)
        exec(compile(source, "<cel fast: exact part>", "exec"), gen.namespace)  # noqa: S102 - our own generated source
        name = self.const(gen.namespace["_program"])
        return f"_ok({name}(act, budget))", "bool" if boolish(node) else "dyn"

    def _Lit(self, node: ast.Lit) -> tuple[str, str] | None:
        value = node.value
        kind = _LITERAL_KINDS.get(type(value), "dyn")
        if kind == "int" and abs(value) > _EXACT_INT:
            kind = "dyn"  # compared only after a same-type test, as the exact code does
        return self.const(value), kind

    def _Ident(self, node: ast.Ident) -> tuple[str, str] | None:
        for scope in reversed(self.scopes):
            if node.name in scope:
                return scope[node.name], "dyn"
        return self._chain(node)

    def _Comprehension(self, node: ast.Comprehension) -> tuple[str, str]:
        """``exists``/``all`` over a list: a helper charging the budget per iteration as the exact
        code does, and memoised where the exact code memoises it, so the charges are the same."""
        if (node.kind not in ("exists", "all") or node.var2 is not None or node.filter is not None or self.scopes
                or self.outlined or _has_comprehension(node.body)):
            return "_fail()", "dyn"
        rng, kind = self.expr(node.range)
        name = f"_c{len(self.helpers)}"
        var = self.tmp(f"v_{node.var}_")
        self.scopes.append({node.var: var})
        try:
            body = self.boolean(node.body)
        finally:
            self.scopes.pop()
        steps = 1 + self.checked.comprehension_calls.get(id(node), 0)
        roots = ", ".join(self.roots.values())
        decide, otherwise = ("True", "False") if node.kind == "exists" else ("False", "True")
        self.helpers.append("\n".join([
            f"def {name}(budget, items, {roots}):",
            "    if type(items) is not list:",
            "        raise Fallback",
            f"    for {var} in items:",
            f"        budget.steps -= {steps}",
            f"        if budget.steps < {self.total_steps}:",  # keeps every later static charge >= 0
            "            raise Fallback",
            f"        if {body if node.kind == 'exists' else f'not {body}'}:",
            f"            return {decide}",
            f"    return {otherwise}",
        ]))
        return f"{name}(budget, {rng}, {roots})", "bool"

    def _Select(self, node: ast.Select) -> tuple[str, str] | None:
        return self._chain(node)

    def _chain(self, node: ast.Node, container: bool = False) -> tuple[str, str] | None:
        resolved = self.checked.chains.get(id(node))
        if resolved is None or id(node) in self.checked.denotations:
            return None
        variable, fields = resolved
        root = self.roots.get(variable)
        if root is None:
            root = self.roots[variable] = f"a{len(self.roots)}"
        schema = self.validated.get(variable)
        kind = proven_kind(schema, schema, fields) if schema is not None else None
        if not self.scopes and len(fields) > (0 if container else 1) and schema is not None and proven_kind(schema, schema, fields[:1]) == "dict":
            # read through an object: from a local read once, up front (see ``containers``)
            self.through[(variable, fields[0])] += 1
            local = self.containers.get((variable, fields[0]))
            if local is not None:
                return local + "".join(f"[{f!r}]" for f in fields[1:]), kind or "dyn"
        return root + "".join(f"[{f!r}]" for f in fields), kind or "dyn"

    def _Has(self, node: ast.Has) -> tuple[str, str]:
        chain = self._chain(node.operand, container=True) if isinstance(node.operand, (ast.Ident, ast.Select)) else None
        operand, kind = chain if chain is not None else self.expr(node.operand)
        if kind == "dict":
            return f"({node.field!r} in {operand})", "bool"
        t = self.tmp()
        return f"(({node.field!r} in {t}) if type({t} := {operand}) is dict else _fail())", "bool"

    def _Unary(self, node: ast.Unary) -> tuple[str, str] | None:
        if node.op != "!":
            return None
        return f"(not {self.boolean(node.operand)})", "bool"

    def _Logic(self, node: ast.Logic) -> tuple[str, str]:
        joiner = " and " if node.op == "&&" else " or "
        return "(" + joiner.join(self.boolean(o) for o in node.operands) + ")", "bool"

    def _Cond(self, node: ast.Cond) -> tuple[str, str]:
        then, a = self.expr(node.then)
        otherwise, b = self.expr(node.otherwise)
        return f"({then} if {self.boolean(node.cond)} else {otherwise})", a if a == b else "dyn"

    def _Binary(self, node: ast.Binary) -> tuple[str, str] | None:
        op = node.op
        if op == "in":
            return self._in(node)
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            return None
        left, lk = self.expr(node.left)
        right, rk = self.expr(node.right)
        if op in ("==", "!=") and lk in _SCALARS and rk in _SCALARS:
            return f"({left} {op} {right})", "bool"  # no int here: Python's True == 1
        if lk == rk and lk in ("str", "int"):
            return f"({left} {op} {right})", "bool"
        # One side's type known: test the other's, as the exact code's inline path does.
        if lk in ("str", "int", "bool") and rk == "dyn":
            t = self.tmp()
            return f"(({left} {op} {t}) if type({t} := {right}) is {lk} else _fail())", "bool"
        if rk in ("str", "int", "bool") and lk == "dyn":
            t = self.tmp()
            return f"(({t} {op} {right}) if type({t} := {left}) is {rk} else _fail())", "bool"
        if lk == rk == "dyn":
            a, b = self.tmp(), self.tmp()
            kinds = "_SEQ" if op in ("==", "!=") else "_ORD"
            return (f"(({a} {op} {b}) if type({a} := {left}) is type({b} := {right}) and type({a}) in {kinds}"
                    f" else _fail())"), "bool"
        return None

    def _in(self, node: ast.Binary) -> tuple[str, str] | None:
        item, ik = self.expr(node.left)
        right = node.right
        if isinstance(right, ast.ListLit) and right.items and all(isinstance(i, ast.Lit) for i in right.items):
            values = [i.value for i in right.items]  # type: ignore[union-attr]
            kinds = {type(v) for v in values}
            if len(kinds) != 1 or not kinds <= {str, int}:
                return None
            kind = _LITERAL_KINDS[kinds.pop()]
            members = self.const(frozenset(values))
            if ik == kind or (kind == "str" and ik in _SCALARS):
                return f"({item} in {members})", "bool"
            t = self.tmp()
            return f"(({t} in {members}) if type({t} := {item}) is {kind} else _fail())", "bool"
        container, ck = self.expr(right)
        if ik == "str" and ck in ("list", "dict"):
            return f"({item} in {container})", "bool"
        t, c = self.tmp(), self.tmp()
        tests = []
        if ik != "str":
            tests.append(f"type({t} := {item}) is str")
            item = t
        if ck not in ("list", "dict"):
            tests.append(f"(type({c} := {container}) is list or type({c}) is dict)")
            container = c
        return f"(({item} in {container}) if {' and '.join(tests)} else _fail())", "bool"

    def _Call(self, node: ast.Call) -> tuple[str, str] | None:
        if node.name in self.functions or node.name not in ("size", "startsWith", "endsWith", "contains", "matches"):
            return None
        args = ((node.target,) if node.target is not None else ()) + node.args
        builtin = fn.BUILTINS[node.name]
        if not (builtin.member if node.target is not None else builtin.function):
            return None
        if node.name == "size":
            if len(args) != 1:
                return None
            operand, kind = self.expr(args[0])
            if kind in ("str", "list"):
                return f"len({operand})", "int"
            t = self.tmp()
            return f"(len({t}) if type({t} := {operand}) in _SIZED else _fail())", "int"
        literal = args[-1].value if len(args) == 2 and isinstance(args[-1], ast.Lit) else None
        if node.target is None or type(literal) is not str:
            return None
        target, kind = self.expr(node.target)
        t = self.tmp()
        subject = target if kind == "str" else t
        if node.name in ("startsWith", "endsWith"):
            method = "startswith" if node.name == "startsWith" else "endswith"
            test = f"{subject}.{method}({self.const(literal)})"
        elif node.name == "contains":
            test = f"({self.const(literal)} in {subject})"
        else:
            regex = fn.compile_regex(literal)
            if type(regex) is CELError:
                return None
            test = f"({self.const(regex)}.search({subject}) is not None)"
        if kind == "str":
            return f"({test})", "bool"
        return f"({test} if type({t} := {target}) is str else _fail())", "bool"


_UNSET: Final = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()


def _has_comprehension(node: ast.Node) -> bool:
    if isinstance(node, ast.Comprehension):
        return True
    for name in getattr(node, "__slots__", ()):
        value = getattr(node, name)
        for v in value if isinstance(value, tuple) else (value,):
            for x in v if isinstance(v, tuple) else (v,):
                if isinstance(x, ast.Node.__args__) and _has_comprehension(x):  # type: ignore[attr-defined,unused-ignore]
                    return True
    return False


def compile_fast(plan: list[tuple[int, ast.Node, int, ast.Node | None, int]], checked: Checked,
                 functions: Mapping[str, fn.CelFunction], keys: dict[int, Key], sizes: dict[int, int],
                 shared: set[Key], validated: Mapping[str, Mapping[str, Any]], outlined: bool) -> tuple[Any, str] | None:
    """The fast function ``_fast(act, budget)`` and its source; ``None`` if Python cannot compile
    it (an expression nested deeper than the parser allows): then only the exact one runs."""
    try:
        first = FastGen(checked, functions, keys, sizes, shared, validated, outlined)
        first.function(plan)
        # Written once, a sub-expression is evaluated at most once: a memo would only cost its
        # bookkeeping.  An object read through a few times is worth a local.
        gen = FastGen(checked, functions, keys, sizes, shared - {k for k, n in first.sites.items() if n == 1}, validated, outlined)
        for i, path in enumerate(p for p, n in first.through.items() if n >= _CONTAINER_READS):
            gen.containers[path] = f"o{i}"
        source = gen.function(plan)
        exec(compile(source, "<cel rule set, fast>", "exec"), gen.namespace)  # noqa: S102 - our own generated source
    except (SyntaxError, RecursionError, MemoryError):
        return None
    return gen.namespace["_fast"], source

