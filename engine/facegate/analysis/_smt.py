"""CEL conditions -> SMT (z3) over every valid request: the translation the analyses share.

The request is modelled from its JSON Schema (:mod:`facegate.explain._facts`): each object and
field has a presence boolean (a child present implies its parent present; required fields are
present with their parent); an enum is an integer index into its values, a boolean a Bool, an
integer an Int within its bounds, a string a String within its length (and its ``pattern``
where the small regex translator below knows it), a list of enum items (``uniqueItems``) a set
(one membership Bool per value, at most ``maxItems``).  ``params`` are constants.

Every expression becomes a pair *(value, error)*, so CEL's error semantics are kept exactly:
selecting an absent field is an error; ``&&``/``||`` absorb errors as CEL does (``false &&
error`` is false); ``exists``/``all`` likewise; a rule's outcome follows
:func:`facegate._decide.condition_outcome` (a forbid that errors denies, a permit that errors
does not apply).

Constructs outside this subset (maps, indexing lists, string building, timestamps, plugin
functions, lists of free items ...) raise :class:`NotAnalysable`.  A rule whose conditions do
not translate is modelled by free outcome variables -- it may apply, error or not apply on any
request -- so a proof ("never", "always") stays sound, and every witness the solver returns
is re-decided concretely before it is reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import z3  # type: ignore[import-untyped]

from ..cel import _ast as A
from ..cel._parse import parse
from ..explain._facts import Leaf, walk


class NotAnalysable(Exception):
    """A construct the translation does not model; the message names it."""


@dataclass
class Sym:
    """A symbolic value: ``kind`` is enum, bool, int, string, list (set of enum), const or obj."""

    kind: str
    term: Any = None  # z3 term (enum: Int index) or Python value for const
    domain: tuple[Any, ...] = ()
    members: dict[Any, Any] = field(default_factory=dict)  # list: value -> Bool
    path: tuple[str, ...] = ()  # obj: the object path


TRUE, FALSE = z3.BoolVal(True), z3.BoolVal(False)


class RequestModel:
    """The z3 variables of one request and the constraints that make it valid."""

    def __init__(self, schema: Mapping[str, Any], prefix: str = "") -> None:
        self.leaves, objects = walk(schema)
        self.prefix = prefix
        self.present: dict[tuple[str, ...], Any] = {(): TRUE}
        self.values: dict[tuple[str, ...], Sym] = {}
        self.by_path: dict[tuple[str, ...], Leaf] = {leaf.path: leaf for leaf in self.leaves}
        self.objects = {o.path for o in objects}
        self.constraints: list[Any] = []
        self.approximate: list[str] = []
        for o in sorted(objects, key=lambda o: len(o.path)):
            self._presence(o.path, o.required)
        for leaf in self.leaves:
            self._presence(leaf.path, leaf.required)
            self.values[leaf.path] = self._value(leaf)

    def name(self, path: tuple[str, ...], what: str) -> str:
        return f"{self.prefix}{'.'.join(path)}:{what}"

    def _presence(self, path: tuple[str, ...], required: bool) -> None:
        parent = self.present[path[:-1]]
        if required:
            self.present[path] = parent
            return
        p = z3.Bool(self.name(path, "present"))
        self.present[path] = p
        self.constraints.append(z3.Implies(p, parent))

    def _value(self, leaf: Leaf) -> Sym:
        def n(what: str) -> str:
            return self.name(leaf.path, what)

        if leaf.kind == "enum":
            v = z3.Int(n("index"))
            self.constraints += [v >= 0, v < len(leaf.values)]
            return Sym("enum", v, leaf.values)
        if leaf.kind == "bool":
            return Sym("bool", z3.Bool(n("value")))
        if leaf.kind == "int":
            v = z3.Int(n("value"))
            if leaf.minimum is not None:
                self.constraints.append(v >= leaf.minimum)
            if leaf.maximum is not None:
                self.constraints.append(v <= leaf.maximum)
            return Sym("int", v)
        if leaf.kind == "string":
            v = z3.String(n("value"))
            if leaf.max_length is not None:
                self.constraints.append(z3.Length(v) <= leaf.max_length)
            if leaf.pattern is not None:
                try:
                    self.constraints.append(z3.InRe(v, regex(leaf.pattern)))
                except NotAnalysable:
                    self.approximate.append(f"{leaf.dotted}: pattern `{leaf.pattern}` not modelled (witnesses are checked)")
            return Sym("string", v)
        if leaf.kind == "list" and leaf.supported:
            members = {val: z3.Bool(n(f"has:{val}")) for val in leaf.values}
            if leaf.max_items is not None:
                self.constraints.append(z3.Sum([z3.If(b, 1, 0) for b in members.values()]) <= leaf.max_items)
            return Sym("list", None, leaf.values, members)
        return Sym("unsupported", leaf.dotted)

    def valid(self) -> Any:
        return z3.And(self.constraints) if self.constraints else TRUE

    def request_of(self, model: Any) -> dict[str, Any]:
        """The concrete request a model describes."""
        out: dict[str, Any] = {}
        for path in sorted(self.objects, key=len):
            if z3.is_true(model.eval(self.present[path], model_completion=True)):
                _put(out, path, {})
        for leaf in self.leaves:
            if not z3.is_true(model.eval(self.present[leaf.path], model_completion=True)):
                continue
            sym = self.values[leaf.path]
            if sym.kind == "unsupported":
                continue
            _put(out, leaf.path, concrete(sym, model))
        return out


def concrete(sym: Sym, model: Any) -> Any:
    if sym.kind == "enum":
        return sym.domain[model.eval(sym.term, model_completion=True).as_long()]
    if sym.kind == "bool":
        return z3.is_true(model.eval(sym.term, model_completion=True))
    if sym.kind == "int":
        return model.eval(sym.term, model_completion=True).as_long()
    if sym.kind == "string":
        return model.eval(sym.term, model_completion=True).as_string()
    if sym.kind == "list":
        return [v for v in sym.domain if z3.is_true(model.eval(sym.members[v], model_completion=True))]
    raise NotAnalysable(sym.kind)


def _put(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


class Translator:
    """Translate parsed CEL into (value, error) pairs against one :class:`RequestModel`."""

    def __init__(self, model: RequestModel, params: Mapping[str, Any], roots: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.params = params
        self.roots = dict(roots or {})  # extra roots (``decision``): name -> callable(field) -> Sym

    def condition(self, text: str) -> tuple[Any, Any]:
        """A boolean condition: (value, error)."""
        value, err = self.node(parse(text, 60), {})
        if value.kind == "const" and isinstance(value.term, bool):
            return z3.BoolVal(value.term), err
        if value.kind != "bool":
            raise NotAnalysable(f"condition is not a bool (`{value.kind}`)")
        return value.term, err

    def node(self, n: Any, env: dict[str, Sym]) -> tuple[Sym, Any]:
        method = getattr(self, "_" + type(n).__name__.lower(), None)
        if method is None:
            raise NotAnalysable(f"`{type(n).__name__}` expressions")
        return method(n, env)  # type: ignore[no-any-return]

    def _lit(self, n: A.Lit, env: dict[str, Sym]) -> tuple[Sym, Any]:
        if not isinstance(n.value, (bool, int, str)) or type(n.value).__name__ not in ("bool", "int", "str"):
            raise NotAnalysable(f"literal `{n.value!r}`")
        return Sym("const", n.value), FALSE

    def _listlit(self, n: A.ListLit, env: dict[str, Sym]) -> tuple[Sym, Any]:
        items = [self.node(i, env) for i in n.items]
        if not all(s.kind == "const" for s, _ in items):
            raise NotAnalysable("list literals with non-constant items")
        return Sym("const", [s.term for s, _ in items]), FALSE

    def _ident(self, n: A.Ident, env: dict[str, Sym]) -> tuple[Sym, Any]:
        if n.name in env:
            return env[n.name], FALSE
        if n.name == "request":
            return Sym("obj", path=()), FALSE
        if n.name == "params":
            return Sym("params"), FALSE
        if n.name in self.roots:
            return Sym("root", n.name), FALSE
        raise NotAnalysable(f"identifier `{n.name}`")

    def _select(self, n: A.Select, env: dict[str, Sym]) -> tuple[Sym, Any]:
        base, err = self.node(n.operand, env)
        if base.kind == "params":
            if n.field not in self.params:
                raise NotAnalysable(f"unknown parameter `params.{n.field}`")
            return _const(self.params[n.field]), err
        if base.kind == "root":
            return self.roots[base.term](n.field), err
        if base.kind != "obj":
            raise NotAnalysable(f"field selection `.{n.field}` on a `{base.kind}`")
        path = (*base.path, n.field)
        m = self.model
        if path not in m.present:
            raise NotAnalysable(f"unknown field `request.{'.'.join(path)}`")
        missing = z3.Or(err, z3.Not(m.present[path]))
        if path in m.objects:
            return Sym("obj", path=path), missing
        sym = m.values[path]
        if sym.kind == "unsupported":
            raise NotAnalysable(f"field `request.{'.'.join(path)}` (its type is not modelled)")
        return sym, missing

    def _has(self, n: A.Has, env: dict[str, Sym]) -> tuple[Sym, Any]:
        base, err = self.node(n.operand, env)
        if base.kind != "obj":
            raise NotAnalysable("has() on something other than a request object")
        path = (*base.path, n.field)
        if path not in self.model.present:
            raise NotAnalysable(f"unknown field `request.{'.'.join(path)}`")
        return Sym("bool", self.model.present[path]), err

    def _logic(self, n: A.Logic, env: dict[str, Sym]) -> tuple[Sym, Any]:
        parts = [self._bool(o, env) for o in n.operands]
        errs = z3.Or([e for _, e in parts])
        if n.op == "&&":
            decided = z3.Or([z3.And(z3.Not(e), z3.Not(v)) for v, e in parts])  # some operand is false
            return Sym("bool", z3.Not(decided)), z3.And(errs, z3.Not(decided))
        decided = z3.Or([z3.And(z3.Not(e), v) for v, e in parts])  # some operand is true
        return Sym("bool", decided), z3.And(errs, z3.Not(decided))

    def _bool(self, n: Any, env: dict[str, Sym]) -> tuple[Any, Any]:
        s, e = self.node(n, env)
        if s.kind == "const" and isinstance(s.term, bool):
            return z3.BoolVal(s.term), e
        if s.kind != "bool":
            raise NotAnalysable(f"a `{s.kind}` where a bool is needed")
        return s.term, e

    def _unary(self, n: A.Unary, env: dict[str, Sym]) -> tuple[Sym, Any]:
        if n.op == "!":
            v, e = self._bool(n.operand, env)
            return Sym("bool", z3.Not(v)), e
        s, e = self.node(n.operand, env)
        if s.kind == "const" and isinstance(s.term, int):
            return Sym("const", -s.term), e
        if s.kind == "int":
            return Sym("int", -s.term), e
        raise NotAnalysable(f"unary `{n.op}` on `{s.kind}`")

    def _cond(self, n: A.Cond, env: dict[str, Sym]) -> tuple[Sym, Any]:
        c, ce = self._bool(n.cond, env)
        a, ae = self.node(n.then, env)
        b, be = self.node(n.otherwise, env)
        err = z3.Or(ce, z3.If(c, ae, be))
        kinds = {a.kind if a.kind != "const" else _const_kind(a.term), b.kind if b.kind != "const" else _const_kind(b.term)}
        if kinds == {"bool"}:
            return Sym("bool", z3.If(c, _as_bool(a), _as_bool(b))), err
        if kinds == {"int"}:
            return Sym("int", z3.If(c, _int(a), _int(b))), err
        if kinds == {"string"}:
            return Sym("string", z3.If(c, _str(a), _str(b))), err
        raise NotAnalysable(f"a conditional choosing between `{a.kind}` and `{b.kind}`")

    def _binary(self, n: A.Binary, env: dict[str, Sym]) -> tuple[Sym, Any]:
        left, le = self.node(n.left, env)
        right, re_ = self.node(n.right, env)
        err = z3.Or(le, re_)
        if n.op in ("==", "!="):
            eq = equal(left, right)
            return Sym("bool", eq if n.op == "==" else z3.Not(eq)), err
        if n.op == "in":
            return Sym("bool", member(left, right)), err
        if n.op in ("<", "<=", ">", ">="):
            if "string" in {left.kind, right.kind} or (left.kind == right.kind == "const" and isinstance(left.term, str)):
                a, b = _str(left), _str(right)  # lexicographic, as CEL orders strings (ISO dates sort as dates)
            else:
                a, b = _int(left), _int(right)
            return Sym("bool", {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[n.op]), err
        if n.op in ("+", "-", "*"):
            if left.kind == "const" and right.kind == "const" and isinstance(left.term, int) and isinstance(right.term, int):
                return Sym("const", {"+": left.term + right.term, "-": left.term - right.term, "*": left.term * right.term}[n.op]), err
            a, b = _int(left), _int(right)
            return Sym("int", {"+": a + b, "-": a - b, "*": a * b}[n.op]), err
        raise NotAnalysable(f"operator `{n.op}`")

    def _index(self, n: A.Index, env: dict[str, Sym]) -> tuple[Sym, Any]:
        base, err = self.node(n.operand, env)
        key, kerr = self.node(n.index, env)
        if base.kind == "map" and key.kind == "const" and isinstance(key.term, str):
            return base.term(key.term), z3.Or(err, kerr)
        raise NotAnalysable(f"indexing a `{base.kind}`")

    def _call(self, n: A.Call, env: dict[str, Sym]) -> tuple[Sym, Any]:
        if n.name == "size":
            arg = n.target if n.target is not None else (n.args[0] if len(n.args) == 1 else None)
            if arg is None:
                raise NotAnalysable("size() without an argument")
            s, e = self.node(arg, env)
            if s.kind == "list":
                return Sym("int", z3.Sum([z3.If(b, 1, 0) for b in s.members.values()]) if s.members else z3.IntVal(0)), e
            if s.kind == "string":
                return Sym("int", z3.Length(s.term)), e
            if s.kind == "const" and isinstance(s.term, (str, list)):
                return Sym("const", len(s.term)), e
            raise NotAnalysable(f"size() of `{s.kind}`")
        if n.name in ("startsWith", "endsWith", "contains") and n.target is not None and len(n.args) == 1:
            s, e = self.node(n.target, env)
            a, ae = self.node(n.args[0], env)
            if s.kind != "string" or a.kind != "const" or not isinstance(a.term, str):
                raise NotAnalysable(f"{n.name}() on `{s.kind}`")
            lit = z3.StringVal(a.term)
            fn = {"startsWith": z3.PrefixOf(lit, s.term), "endsWith": z3.SuffixOf(lit, s.term), "contains": z3.Contains(s.term, lit)}
            return Sym("bool", fn[n.name]), z3.Or(e, ae)
        if n.name in ("intersects", "containsAll") and n.target is None and len(n.args) == 2:
            (a, ae), (b, be) = self.node(n.args[0], env), self.node(n.args[1], env)
            ma, mb = _membership(a), _membership(b)
            if n.name == "intersects":
                common = [v for v in ma if v in mb]
                return Sym("bool", z3.Or([z3.And(ma[v], mb[v]) for v in common]) if common else FALSE), z3.Or(ae, be)
            return Sym("bool", z3.And([z3.Implies(mb[v], ma.get(v, FALSE)) for v in mb]) if mb else TRUE), z3.Or(ae, be)
        raise NotAnalysable(f"function `{n.name}()`")

    def _comprehension(self, n: A.Comprehension, env: dict[str, Sym]) -> tuple[Sym, Any]:
        if n.kind not in ("exists", "all") or n.var2 is not None:
            raise NotAnalysable(f"macro `{n.kind}`")
        rng, rerr = self.node(n.range, env)
        if rng.kind == "list":
            pairs = [(val, b) for val, b in rng.members.items()]
        elif rng.kind == "const" and isinstance(rng.term, list):
            pairs = [(val, TRUE) for val in rng.term]
        else:
            raise NotAnalysable(f"`{n.kind}` over a `{rng.kind}`")
        trues, falses, errs = [], [], []
        for val, in_list in pairs:
            v, e = self._bool(n.body, {**env, n.var: Sym("const", val)})
            trues.append(z3.And(in_list, z3.Not(e), v))
            falses.append(z3.And(in_list, z3.Not(e), z3.Not(v)))
            errs.append(z3.And(in_list, e))
        any_err = z3.Or(errs) if errs else FALSE
        if n.kind == "exists":
            decided = z3.Or(trues) if trues else FALSE
            return Sym("bool", decided), z3.Or(rerr, z3.And(any_err, z3.Not(decided)))
        decided = z3.Or(falses) if falses else FALSE
        return Sym("bool", z3.Not(decided)), z3.Or(rerr, z3.And(any_err, z3.Not(decided)))


def _const(value: Any) -> Sym:
    if isinstance(value, (bool, int, str)) or (isinstance(value, list) and all(isinstance(v, (bool, int, str)) for v in value)):
        return Sym("const", value)
    raise NotAnalysable(f"parameter value `{value!r}`")


def _const_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    return "list"


def _as_bool(s: Sym) -> Any:
    return z3.BoolVal(s.term) if s.kind == "const" else s.term


def _str(s: Sym) -> Any:
    if s.kind == "string":
        return s.term
    if s.kind == "const" and isinstance(s.term, str):
        return z3.StringVal(s.term)
    raise NotAnalysable(f"a string operation on `{s.kind}`")


def _membership(s: Sym) -> dict[Any, Any]:
    """A list as value -> membership Bool (the built-in ``intersects``/``containsAll`` take lists of scalars)."""
    if s.kind == "list":
        return dict(s.members)
    if s.kind == "const" and isinstance(s.term, list):
        return {v: TRUE for v in s.term}
    raise NotAnalysable(f"a list function on `{s.kind}`")


def _int(s: Sym) -> Any:
    if s.kind == "int":
        return s.term
    if s.kind == "const" and isinstance(s.term, int) and not isinstance(s.term, bool):
        return z3.IntVal(s.term)
    raise NotAnalysable(f"an ordering comparison on `{s.kind}`")


def equal(a: Sym, b: Sym) -> Any:
    if a.kind == "const" and b.kind != "const":
        a, b = b, a
    if b.kind == "const":
        c = b.term
        if a.kind == "const":
            return z3.BoolVal(a.term == c and type(a.term) is type(c))
        if a.kind == "enum":
            return a.term == a.domain.index(c) if c in a.domain and isinstance(c, str) else FALSE
        if a.kind == "bool" and isinstance(c, bool):
            return a.term == z3.BoolVal(c)
        if a.kind == "int" and isinstance(c, int) and not isinstance(c, bool):
            return a.term == c
        if a.kind == "string" and isinstance(c, str):
            return a.term == z3.StringVal(c)
        if a.kind == "list" and isinstance(c, list):
            return z3.And([a.members[v] == z3.BoolVal(v in c) for v in a.domain]) if set(c) <= set(a.domain) else FALSE
        raise NotAnalysable(f"comparing a `{a.kind}` with `{c!r}`")
    if a.kind == b.kind == "enum":
        common = [v for v in a.domain if v in b.domain]
        return z3.Or([z3.And(a.term == a.domain.index(v), b.term == b.domain.index(v)) for v in common]) if common else FALSE
    if a.kind == b.kind and a.kind in ("bool", "int", "string"):
        return a.term == b.term
    raise NotAnalysable(f"comparing a `{a.kind}` with a `{b.kind}`")


def member(item: Sym, coll: Sym) -> Any:
    if coll.kind == "const" and isinstance(coll.term, list):
        return z3.Or([equal(item, Sym("const", c)) for c in coll.term]) if coll.term else FALSE
    if coll.kind == "list":
        if item.kind == "const":
            return coll.members.get(item.term, FALSE)
        if item.kind == "enum":
            options = [z3.And(item.term == item.domain.index(v), coll.members[v]) for v in item.domain if v in coll.members]
            return z3.Or(options) if options else FALSE
    raise NotAnalysable(f"`in` on a `{coll.kind}`")


# ------------------------------------------------------------------------------------------------
# a small regex translator for schema patterns (anchored; classes, groups, ?, *, +, {m,n}, |)

_CLASS = re.compile(r"\[([^\]]+)\]")


def regex(pattern: str) -> Any:
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise NotAnalysable(f"unanchored pattern `{pattern}`")
    body, pos = _alt(pattern[1:-1], 0)
    if pos != len(pattern) - 2:
        raise NotAnalysable(f"pattern `{pattern}`")
    return body


def _alt(p: str, i: int) -> tuple[Any, int]:
    options = []
    seq, i = _seq(p, i)
    options.append(seq)
    while i < len(p) and p[i] == "|":
        seq, i = _seq(p, i + 1)
        options.append(seq)
    return (options[0] if len(options) == 1 else z3.Union(*options)), i


def _seq(p: str, i: int) -> tuple[Any, int]:
    parts = []
    while i < len(p) and p[i] not in "|)":
        atom, i = _atom(p, i)
        atom, i = _quant(p, i, atom)
        parts.append(atom)
    if not parts:
        return z3.Re(z3.StringVal("")), i
    return (parts[0] if len(parts) == 1 else z3.Concat(*parts)), i


def _atom(p: str, i: int) -> tuple[Any, int]:
    ch = p[i]
    if ch == "(":
        inner, j = _alt(p, i + 1)
        if j >= len(p) or p[j] != ")":
            raise NotAnalysable(f"pattern `{p}`")
        return inner, j + 1
    if ch == "[":
        m = _CLASS.match(p, i)
        if not m or m.group(1).startswith("^"):
            raise NotAnalysable(f"pattern class in `{p}`")
        spec, ranges, k = m.group(1), [], 0
        while k < len(spec):
            if k + 2 < len(spec) and spec[k + 1] == "-":
                ranges.append(z3.Range(spec[k], spec[k + 2]))
                k += 3
            else:
                ranges.append(z3.Re(z3.StringVal(spec[k])))
                k += 1
        return (ranges[0] if len(ranges) == 1 else z3.Union(*ranges)), m.end()
    if ch in "\\.^$*+?{}":
        raise NotAnalysable(f"pattern construct `{ch}` in `{p}`")
    return z3.Re(z3.StringVal(ch)), i + 1


def _quant(p: str, i: int, atom: Any) -> tuple[Any, int]:
    if i >= len(p):
        return atom, i
    ch = p[i]
    if ch == "?":
        return z3.Option(atom), i + 1
    if ch == "*":
        return z3.Star(atom), i + 1
    if ch == "+":
        return z3.Plus(atom), i + 1
    if ch == "{":
        m = re.compile(r"\{(\d+)(?:,(\d*))?\}").match(p, i)
        if not m:
            raise NotAnalysable(f"pattern `{p}`")
        lo = int(m.group(1))
        hi = lo if m.group(2) is None else (int(m.group(2)) if m.group(2) else None)
        if hi is None:
            return z3.Concat(z3.Loop(atom, lo, lo), z3.Star(atom)) if lo else z3.Star(atom), m.end()
        return z3.Loop(atom, lo, hi), m.end()
    return atom, i
