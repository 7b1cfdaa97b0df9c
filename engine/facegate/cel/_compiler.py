"""Compile phase: the checked tree becomes one Python function, generated and compiled once.

Why generated code rather than a closure per node: a Python call costs about as much as
the work most CEL nodes do (a dict lookup, a comparison), so a closure tree spends most of
its time calling.  Here a whole condition is one function of straight-line code: each node
becomes a few statements assigning a local, with an inline fast path for the operand types
policies actually see (``str == "literal"``, ``dict["key"]``, ``x in {"a", "b"}``) and a
call into :mod:`._runtime` for everything else.  Values are plain Python; errors are
:class:`CELError` values that flow like any other value.

No text from the expression reaches the generated source except through ``repr`` of a
``str``, ``bytes``, ``int`` or finite ``float`` (always a literal); every other constant is
passed in the function's namespace.  ``&&``/``||`` chains use one ``if`` per operand at a
single indentation level; very deep expressions are split into helper functions so the
result stays within CPython's nesting limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from . import _ast as ast
from . import _functions as fn
from ._check import Checked
from ._namespace import NAMESPACE
from ._types import _hashable
from ._values import CELError

_MAX_INDENT: Final = 24  # beyond this, subexpressions move into helper functions
_MAX_LOOPS: Final = 8  # CPython allows 20 nested blocks

_COMPARE: Final = {"==": "_eq", "!=": "_ne", "<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_ARITH: Final = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}


def _literal_source(value: Any) -> str | None:
    """Python source for a literal, when it can be written inline safely."""
    t = type(value)
    if value is None or t is bool:
        return repr(value)
    if t is int or (t is float and math.isfinite(value)):
        text = repr(value)
        return f"({text})" if text.startswith("-") else text
    if (t is str or t is bytes) and len(value) <= 256:
        return repr(value)
    return None


class CodeGen:
    def __init__(self, checked: Checked, functions: Mapping[str, fn.CelFunction]) -> None:
        self.checked = checked
        self.functions = functions
        self.lines: list[str] = []
        self.depth = 1
        self.loops = 0
        self.counter = 0
        self.namespace: dict[str, Any] = dict(NAMESPACE)
        self.const_names: dict[tuple[type, Any], str] = {}
        self.scopes: list[dict[str, str]] = []
        self.safe: set[str] = set()  # expressions that can never hold a CELError
        self.helpers: list[list[str]] = []
        # Activation paths already computed in an enclosing block, reused rather than
        # looked up again (the activation is read-only): one dict per open block.
        self.available: list[dict[tuple[str, ...], str]] = [{}]

    # -- output ----------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def indented(self) -> Iterator[None]:
        self.depth += 1
        self.available.append(dict(self.available[-1]))
        try:
            yield
        finally:
            self.depth -= 1
            self.available.pop()

    def tmp(self, stem: str = "t") -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def const(self, value: Any) -> str:
        inline = _literal_source(value)
        if inline is not None:
            self.safe.add(inline)
            return inline
        key = (type(value), value if _hashable(value) else id(value))
        name = self.const_names.get(key)
        if name is None:
            name = f"_k{len(self.const_names)}"
            self.const_names[key] = name
            self.namespace[name] = value
        if type(value) is not CELError:
            self.safe.add(name)
        return name

    def function(self, needs_budget: bool, static_steps: int, body: ast.Node) -> str:
        """The whole module source: helpers first, then ``_program``."""
        if needs_budget:
            self.emit("if budget is None:")
            self.emit("    budget = _Budget(_UNLIMITED)")
        if static_steps:
            self.emit(f"budget.steps -= {static_steps}")
            self.emit("if budget.steps < 0:")
            self.emit("    return _BUDGET")
        result = self.gen(body)
        self.emit(f"return {result}")
        main = ["def _program(act, budget=None):", *self.lines]
        return "\n".join(line for chunk in (*self.helpers, main) for line in chunk) + "\n"

    # -- dispatch --------------------------------------------------------------------

    def gen(self, node: ast.Node) -> str:
        if (self.depth > _MAX_INDENT or self.loops > _MAX_LOOPS) and not isinstance(
            node, (ast.Lit, ast.Ident)
        ):
            return self._outline(node)
        result: str = getattr(self, "_" + type(node).__name__)(node)
        return result

    def named(self, node: ast.Node, singletons: bool = True) -> str:
        """``gen``, but never an inline literal: ``5 is True`` and ``True[0]`` are
        SyntaxWarnings.  ``singletons``: ``True``/``False``/``None`` may stay inline."""
        result = self.gen(node)
        singleton = result in ("True", "False", "None")
        if (singleton and singletons) or (result.isidentifier() and not singleton):
            return result
        out = self.tmp()
        self.emit(f"{out} = {result}")
        if result in self.safe:
            self.safe.add(out)
        return out

    def _outline(self, node: ast.Node) -> str:
        name = f"_h{self.counter + 1}"
        self.counter += 1
        params = ["act", "budget", *(p for scope in self.scopes for p in scope.values())]
        saved = (self.lines, self.depth, self.loops, self.available)
        self.lines, self.depth, self.loops, self.available = [], 1, 0, [{}]
        result = self.gen(node)
        self.emit(f"return {result}")
        self.helpers.append([f"def {name}({', '.join(params)}):", *self.lines])
        self.lines, self.depth, self.loops, self.available = saved
        out = self.tmp()
        self.emit(f"{out} = {name}({', '.join(params)})")
        return out

    def _local(self, name: str) -> str | None:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    # -- leaves and selection --------------------------------------------------------

    def _Lit(self, node: ast.Lit) -> str:
        return self.const(node.value)

    def _Ident(self, node: ast.Ident) -> str:
        local = self._local(node.name)
        if local is not None:
            return local
        return self._chain(node, [node.name])

    def _chain(self, node: ast.Node, parts: list[str]) -> str:
        denoted = self.checked.denotations.get(id(node))
        if denoted is not None:
            return self.const(denoted)
        resolved = self.checked.chains.get(id(node))
        if resolved is not None:
            variable, fields = resolved
            path = (variable, *fields)
            known = self.available[-1]
            if path in known:
                return known[path]
            out = self.tmp()
            cut = next((k for k in range(len(path) - 1, 0, -1) if path[:k] in known), 0)
            self.emit("try:")
            if cut:
                base, rest = known[path[:cut]], path[cut:]
                self.emit(f"    {out} = {base}" + "".join(f"[{f!r}]" for f in rest))
                self.emit("except Exception:")
                self.emit(f"    {out} = _select_path({base}, {rest!r})")
            else:
                self.emit(f"    {out} = act[{variable!r}]" + "".join(f"[{f!r}]" for f in fields))
                self.emit("except Exception:")
                if fields:
                    self.emit(f"    {out} = _select_path(_variable(act, {variable!r}), {tuple(fields)!r})")
                else:
                    self.emit(f"    {out} = _variable(act, {variable!r})")
            known[path] = out
            return out
        out = self.tmp()
        # No schema: the longest dotted prefix bound in the activation is the variable.
        self.emit("try:")
        for cut in range(len(parts), 1, -1):
            self.emit(f"    if {'.'.join(parts[:cut])!r} in act: raise KeyError")
        self.emit(f"    {out} = act[{parts[0]!r}]" + "".join(f"[{f!r}]" for f in parts[1:]))
        self.emit("except Exception:")
        self.emit(f"    {out} = _resolve(act, {tuple(parts)!r})")
        return out

    def _Select(self, node: ast.Select) -> str:
        if id(node) in self.checked.chains or id(node) in self.checked.denotations:
            parts: list[str] = []
            inner: ast.Node = node
            while isinstance(inner, ast.Select):
                parts.append(inner.field)
                inner = inner.operand
            assert isinstance(inner, ast.Ident)
            parts.append(inner.name)
            return self._chain(node, parts[::-1])
        operand = self.named(node.operand, singletons=False)
        out = self.tmp()
        self.emit("try:")
        self.emit(f"    {out} = {operand}[{node.field!r}]")
        self.emit("except Exception:")
        self.emit(f"    {out} = _select({operand}, {node.field!r})")
        return out

    def _Has(self, node: ast.Has) -> str:
        operand = self.named(node.operand)
        out = self.tmp()
        self.emit(
            f"{out} = ({node.field!r} in {operand}) if type({operand}) is dict else _has({operand}, {node.field!r})"
        )
        return out

    def _Index(self, node: ast.Index) -> str:
        container = self.named(node.operand, singletons=False)
        key = self.gen(node.index)
        out = self.tmp()
        literal = node.index.value if isinstance(node.index, ast.Lit) else None
        if type(literal) is str:
            self.emit("try:")
            self.emit(f"    {out} = {container}[{key}]")
            self.emit("except Exception:")
            self.emit(f"    {out} = _index({container}, {key})")
        elif type(literal) is int and literal >= 0:
            self.emit(
                f"{out} = {container}[{key}] if type({container}) is list and {key} < len({container})"
                f" else _index({container}, {key})"
            )
        else:
            self.emit(f"{out} = _index({container}, {key})")
        return out

    # -- literals --------------------------------------------------------------------

    def _ListLit(self, node: ast.ListLit) -> str:
        items = [self.gen(i) for i in node.items]
        out = self.tmp()
        if all(i in self.safe for i in items):
            self.emit(f"{out} = [{', '.join(items)}]")
            self.safe.add(out)
        else:
            self.emit(f"{out} = _make_list({', '.join(items)})")
        return out

    def _MapLit(self, node: ast.MapLit) -> str:
        flat: list[str] = []
        keys = []
        for k, v in node.entries:
            flat.append(self.gen(k))
            flat.append(self.gen(v))
            keys.append(k.value if isinstance(k, ast.Lit) else None)
        out = self.tmp()
        if all(type(k) is str for k in keys) and len(set(keys)) == len(keys):
            values = flat[1::2]
            body = "{" + ", ".join(f"{flat[i]}: {flat[i + 1]}" for i in range(0, len(flat), 2)) + "}"
            unsafe = [v for v in values if v not in self.safe]
            if unsafe:
                self.emit(f"{out} = _first_error({', '.join(unsafe)}) or {body}")
            else:
                self.emit(f"{out} = {body}")
                self.safe.add(out)
        else:
            self.emit(f"{out} = _make_map({', '.join(flat)})")
        return out

    # -- logic -----------------------------------------------------------------------

    def _Logic(self, node: ast.Logic) -> str:
        # One `if` per operand, all at one level; `out` keeps the first error seen, and
        # a deciding operand (false for &&, true for ||) overrides it: CEL's commutative
        # error absorption.
        decide, keep = ("False", "True") if node.op == "&&" else ("True", "False")
        out = self.tmp("r")
        first = self.named(node.operands[0])
        self.emit(f"{out} = {first}")
        for operand in node.operands[1:]:
            self.emit(f"if {out} is not {decide}:")
            with self.indented():
                value = self.named(operand)
                self.emit(f"if {value} is {decide}:")
                self.emit(f"    {out} = {decide}")
                self.emit(f"elif {out} is {keep}:")
                self.emit(f"    {out} = {value}")
        if not all(boolish(o) for o in node.operands):  # else it is already a bool or an error
            self.emit(f"if {out} is not True and {out} is not False:")
            self.emit(f"    {out} = _err({out}, '_{node.op}_')")
        return out

    def _Unary(self, node: ast.Unary) -> str:
        operand = self.named(node.operand)
        out = self.tmp()
        if node.op == "!":
            self.emit(
                f"{out} = False if {operand} is True else True if {operand} is False else _not({operand})"
            )
        else:
            self.emit(f"{out} = -{operand} if type({operand}) is float else _neg({operand})")
        return out

    def _Cond(self, node: ast.Cond) -> str:
        cond = self.named(node.cond)
        out = self.tmp()
        self.emit(f"if {cond} is True:")
        with self.indented():
            self.emit(f"{out} = {self.gen(node.then)}")
        self.emit(f"elif {cond} is False:")
        with self.indented():
            self.emit(f"{out} = {self.gen(node.otherwise)}")
        self.emit("else:")
        self.emit(f"    {out} = _err({cond}, '_?_:_')")
        return out

    # -- operators -------------------------------------------------------------------

    def _Binary(self, node: ast.Binary) -> str:
        if node.op == "in":
            return self._in(node)
        left = self.gen(node.left)
        right = self.gen(node.right)
        out = self.tmp()
        op = node.op
        if op in _COMPARE:
            helper = _COMPARE[op]
            const, other = self._literal_side(node, left, right)
            if const is not None and other is not None:
                value = const[1]
                if value is None and op in ("==", "!="):
                    hit = "True" if op == "==" else "False"
                    self.emit(f"{out} = {hit} if {other} is None else {helper}({left}, {right})")
                elif type(value) in (str, int, bool, bytes, float):
                    self.emit(
                        f"{out} = ({left} {op} {right}) if type({other}) is {type(value).__name__}"
                        f" else {helper}({left}, {right})"
                    )
                else:
                    self.emit(f"{out} = {helper}({left}, {right})")
            else:
                kinds = "_SEQ" if op in ("==", "!=") else "_ORD"
                self.emit(
                    f"{out} = ({left} {op} {right}) if (_t := type({left})) is type({right}) and _t in {kinds}"
                    f" else {helper}({left}, {right})"
                )
            return out
        helper = _ARITH[op]
        if op in ("+", "-", "*"):
            self.emit(f"if type({left}) is int is type({right}):")
            self.emit(f"    {out} = {left} {op} {right}")
            self.emit(f"    if {out} > _MAX or {out} < _MIN:")
            self.emit(f"        {out} = _OVERFLOW")
            self.emit("else:")
            self.emit(f"    {out} = {helper}({left}, {right})")
        else:
            self.emit(f"{out} = {helper}({left}, {right})")
        return out

    @staticmethod
    def _literal_side(node: ast.Binary, left: str, right: str) -> tuple[tuple[str, Any] | None, str | None]:
        if isinstance(node.right, ast.Lit) and not isinstance(node.left, ast.Lit):
            return (right, node.right.value), left
        if isinstance(node.left, ast.Lit) and not isinstance(node.right, ast.Lit):
            return (left, node.left.value), right
        return None, None

    def _in(self, node: ast.Binary) -> str:
        item = self.gen(node.left)
        if (
            isinstance(node.right, ast.ListLit)
            and node.right.items
            and all(isinstance(i, ast.Lit) for i in node.right.items)
        ):
            values = [i.value for i in node.right.items]  # type: ignore[union-attr]
            kinds = {type(v) for v in values}
            if len(kinds) == 1 and kinds <= {str, int}:
                members = self.const(frozenset(values))
                listed = self.const(tuple(values))
                out = self.tmp()
                kind = kinds.pop().__name__
                self.emit(
                    f"{out} = ({item} in {members}) if type({item}) is {kind} else _in({item}, {listed})"
                )
                return out
        container = self.gen(node.right)
        out = self.tmp()
        self.emit(
            f"{out} = ({item} in {container}) if type({item}) is str and"
            f" (type({container}) is list or type({container}) is dict) else _in({item}, {container})"
        )
        return out

    # -- calls -----------------------------------------------------------------------

    def _Call(self, node: ast.Call) -> str:
        arg_nodes = ((node.target,) if node.target is not None else ()) + node.args
        args = [self.named(node.target, singletons=False)] if node.target is not None else []
        args += [self.gen(a) for a in node.args]
        out = self.tmp()
        name = node.name
        custom = self.functions.get(name)
        if custom is not None:
            caller = self.const(fn.custom_caller(custom))
            self.emit(f"{out} = {caller}({', '.join(args)})")
            return out
        builtin = fn.BUILTINS.get(name)
        style_ok = builtin is not None and (builtin.member if node.target is not None else builtin.function)
        arities = {len(params) for params, _ in builtin.signatures} if builtin is not None else set()
        if builtin is None or not style_ok or len(args) not in arities:
            if builtin is None or not style_ok:
                error = CELError(f"unbound function `{name}`")
            else:
                error = CELError(f"no such overload: `{name}` with {len(args)} argument(s)")
            self.emit(
                f"{out} = _first_error({', '.join(args)}) or {self.const(error)}"
                if args
                else f"{out} = {self.const(error)}"
            )
            return out
        literal = arg_nodes[-1].value if len(arg_nodes) == 2 and isinstance(arg_nodes[-1], ast.Lit) else None
        first = args[0] if args else ""
        if name == "dyn":
            self.emit(f"{out} = {args[0]}")
            if args[0] in self.safe:
                self.safe.add(out)
            return out
        if name == "size":
            self.emit(f"{out} = len({first}) if type({first}) in _SIZED else _size({first})")
        elif name in ("startsWith", "endsWith") and type(literal) is str:
            method = "startswith" if name == "startsWith" else "endswith"
            helper = "_starts_with" if name == "startsWith" else "_ends_with"
            self.emit(
                f"{out} = {first}.{method}({args[1]}) if type({first}) is str else {helper}({first}, {args[1]})"
            )
        elif name == "contains" and type(literal) is str:
            self.emit(
                f"{out} = ({args[1]} in {first}) if type({first}) is str else _str_contains({first}, {args[1]})"
            )
        elif name == "matches" and type(literal) is str and type(fn.compile_regex(literal)) is not CELError:
            regex = self.const(fn.compile_regex(literal))
            self.emit(
                f"{out} = ({regex}.search({first}) is not None) if type({first}) is str"
                f" else _matches({first}, {args[1]})"
            )
        else:
            impl = self.const(builtin.impl)
            self.emit(f"{out} = {impl}({', '.join(args)})")
        return out

    # -- comprehensions ----------------------------------------------------------------

    def _Comprehension(self, node: ast.Comprehension) -> str:
        rng = self.gen(node.range)
        items = self.tmp("it")
        out = self.tmp("r")
        err = self.tmp("e")
        kind = node.kind
        self.emit(
            f"{items} = {rng} if type({rng}) is list or type({rng}) is dict else _iter({rng}, {kind!r})"
        )
        self.emit(f"if type({items}) is CELError:")
        self.emit(f"    {out} = {items}")
        self.emit("else:")
        with self.indented():
            self._comprehension_body(node, items, out, err)
        return out

    def _comprehension_body(self, node: ast.Comprehension, items: str, out: str, err: str) -> None:
        kind = node.kind
        steps = 1 + self.checked.comprehension_calls.get(id(node), 0)
        var = self.tmp(f"v_{node.var}_")
        scope = {node.var: var}
        if node.var2 is not None:
            var2 = self.tmp(f"v_{node.var2}_")
            scope[node.var2] = var2
            header = (
                f"for {var}, {var2} in (enumerate({items}) if type({items}) is list else {items}.items()):"
            )
        else:
            header = f"for {var} in {items}:"
        self.safe.update(scope.values())
        accumulate = kind in ("map", "filter", "transformList", "transformMap")
        if kind == "all":
            self.emit(f"{out} = True")
        elif kind == "exists":
            self.emit(f"{out} = False")
        elif kind == "exists_one":
            self.emit(f"{out} = 0")
        else:
            self.emit(f"{out} = {{}}" if kind == "transformMap" else f"{out} = []")
        self.emit(f"{err} = None")
        self.emit(header)
        self.scopes.append(scope)
        self.loops += 1
        with self.indented():
            self.emit(f"budget.steps -= {steps}")
            self.emit("if budget.steps < 0:")
            self.emit(f"    {err} = _BUDGET")
            self.emit("    break")
            if node.filter is not None:
                keep = self.named(node.filter)
                self.emit(f"if {keep} is False:")
                self.emit("    continue")
                self.emit(f"if {keep} is not True:")
                self.emit(f"    {err} = _err({keep}, {kind!r})")
                self.emit("    break")
            value = self.named(node.body)
            if kind in ("all", "exists"):
                decide = "False" if kind == "all" else "True"
                self.emit(f"if {value} is {decide}:")
                self.emit(f"    {out} = {decide}")
                self.emit(f"    {err} = None")
                self.emit("    break")
                self.emit(f"if {value} is not {'True' if kind == 'all' else 'False'} and {err} is None:")
                self.emit(f"    {err} = _err({value}, {kind!r})")
            elif kind in ("exists_one", "filter"):
                self.emit(f"if {value} is True:")
                self.emit(f"    {out} += 1" if kind == "exists_one" else f"    {out}.append({var})")
                self.emit(f"elif {value} is not False:")
                self.emit(f"    {err} = _err({value}, {kind!r})")
                self.emit("    break")
            elif accumulate:
                self.emit(f"if type({value}) is CELError:")
                self.emit(f"    {err} = {value}")
                self.emit("    break")
                if kind == "transformMap":
                    self.emit(f"{out}[{var}] = {value}")
                else:
                    self.emit(f"{out}.append({value})")
        self.loops -= 1
        self.scopes.pop()
        self.emit(f"if {err} is not None:")
        self.emit(f"    {out} = {err}")
        if kind == "exists_one":
            self.emit("else:")
            self.emit(f"    {out} = {out} == 1")


def boolish(node: ast.Node) -> bool:
    """Nodes whose value is always a bool or an error: comparisons, ``in``, ``has()``, ``!``,
    ``&&``/``||`` and the boolean macros (their generated code and runtime helpers return
    nothing else), so ``&&`` and ``||`` need not turn them into errors."""
    if isinstance(node, (ast.Logic, ast.Has)):
        return True
    if isinstance(node, ast.Binary):
        return node.op in ("==", "!=", "<", "<=", ">", ">=", "in")
    if isinstance(node, ast.Unary):
        return node.op == "!"
    if isinstance(node, ast.Comprehension):
        return node.kind in ("all", "exists", "exists_one")
    return False


def compile_function(
    node: ast.Node, checked: Checked, functions: Mapping[str, fn.CelFunction]
) -> tuple[Any, str]:
    """The generated ``_program(act, budget=None)`` and its source."""
    gen = CodeGen(checked, functions)
    needs_budget = checked.static_calls > 0 or bool(checked.comprehension_calls)
    source = gen.function(needs_budget, checked.static_calls, node)
    namespace = gen.namespace
    exec(compile(source, "<cel>", "exec"), namespace)  # noqa: S102 - our own generated source
    return namespace["_program"], source
