"""A rule set compiled into one function: every shared sub-expression evaluated at most once.

A policy pack is many rules, each a conjunction of ``when`` items and of ``unless`` items, and
the same sub-expressions recur across them: a pack's named variables are pasted into every rule
that uses them, and ``has(request.place)`` guards a dozen conditions.  Compiled one program per
rule, each copy is evaluated again.  Here the checked trees of all the rules become one
generated function, ``run(act, budget) -> [(rule index, when value, unless value), ...]``
(only the rules whose ``when`` is not ``false``; ``unless`` is evaluated only when ``when`` is
``true``, else ``None``), in which:

* a sub-expression that occurs more than once (same structure, outside comprehensions) is
  computed the first time it is needed and read from a per-call memo afterwards; small ones
  are inlined at each use behind a "not computed yet" test, large ones become helper functions,
  so the code grows with the distinct sub-expressions, not with the copies;
* fields with a value known at compile time (``known``: e.g. the request's operation, when one
  function is compiled per operation) are replaced by that value and the trees folded, so a rule
  whose ``when`` folds to ``false`` is not in the function at all -- the index, read from the
  syntax tree rather than from the text.

Sharing assumes what CEL guarantees: evaluation has no side effects, so a sub-expression has one
value per activation (custom functions must be pure, as CEL functions are).  The evaluation
budget is charged as each rule's own program would charge it (its call sites up front, one step
per comprehension iteration), except that a shared comprehension runs, and is charged, once.
``&&`` and ``||`` keep CEL's commutative error absorption, so folding and sharing never change a
value.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from . import _ast as ast
from . import _functions as fn
from ._check import Checked
from ._compiler import CodeGen, boolish

_UNSET: Final = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()
_MAX_LEVELS: Final = 6  # nesting of rule groups (each adds an indentation level)
_MEMO_MIN: Final = 6  # shared sub-expressions smaller than this (in nodes) are simply evaluated again
_INLINE_MAX: Final = 8  # shared sub-expressions of up to this many nodes are inlined at each use
Key = tuple[Any, ...]
_NODE: Final = ast.Node.__args__  # type: ignore[attr-defined,unused-ignore]


@dataclasses.dataclass(frozen=True)
class Side:
    """One side of a rule (its ``when`` or ``unless`` items): their checked trees."""

    trees: tuple[ast.Node, ...]
    checked: tuple[Checked, ...]

    @property
    def static_calls(self) -> int:
        return sum(c.static_calls for c in self.checked)


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """The compiled function, its source, and which rules it can report (the others fold to false)."""

    run: Any
    source: str
    kept: tuple[int, ...]
    shared: int  # sub-expressions computed at most once per call
    #: ``run`` for activations whose ``validated`` variables passed their JSON Schema: the
    #: optimistic function (:mod:`._optimistic`) falling back to ``run``; ``run`` itself without.
    fast_run: Any = None
    fast: Any = None  # the optimistic function alone: raises where it cannot vouch for a value
    fast_source: str | None = None


def compile_rule_set(
    rules: Sequence[tuple[Side, Side | None]],
    functions: Mapping[str, fn.CelFunction],
    known: Mapping[tuple[str, ...], str | int | bool] | None = None,
    validated: Mapping[str, Mapping[str, Any]] | None = None,
) -> RuleSet:
    """One function for ``rules`` (``(when, unless or None)`` each), with ``known`` paths folded;
    with ``validated`` (variable -> the JSON Schema its values are known to pass), also the
    optimistic ``fast_run`` for such activations."""
    checked = Checked()
    for when, unless in rules:
        for side in (when, unless):
            for c in side.checked if side is not None else ():
                checked.chains.update(c.chains)
                checked.denotations.update(c.denotations)
                checked.comprehension_calls.update(c.comprehension_calls)
    folder = _Folder(checked, dict(known or {}))
    plan: list[tuple[int, ast.Node, int, ast.Node | None, int]] = []
    for index, (when, unless) in enumerate(rules):
        when_tree = folder.fold(_conjunction(when.trees))
        if isinstance(when_tree, ast.Lit) and when_tree.value is False:
            continue
        unless_tree = folder.fold(_conjunction(unless.trees)) if unless is not None and unless.trees else None
        plan.append((index, when_tree, when.static_calls, unless_tree, unless.static_calls if unless else 0))
    gen = _SharedGen(checked, functions, [t for _, w, _, u, _ in plan for t in (w, u) if t is not None])
    source = gen.rule_set(plan)
    namespace = gen.namespace
    namespace["_UNSET"] = _UNSET
    namespace["_first"] = _first
    exec(compile(source, "<cel rule set>", "exec"), namespace)  # noqa: S102 - our own generated source
    run = namespace["_rules"]
    fast_run, fast, fast_source = run, None, None
    if validated is not None:
        from ._optimistic import compile_fast, optimistic

        outlined = any(h[0].startswith("def _h") for h in gen.helpers)  # deep code, generated without memo
        compiled = compile_fast(plan, checked, functions, gen.keys, gen.sizes, gen.shared, validated, outlined)
        if compiled is not None:
            fast, fast_source = compiled
            fast_run = optimistic(fast, run)
    return RuleSet(run, source, tuple(i for i, *_ in plan), len(gen.slots), fast_run, fast, fast_source)


_FIELDS: dict[type, tuple[dataclasses.Field[Any], ...]] = {}


def _fields(node: ast.Node) -> tuple[dataclasses.Field[Any], ...]:
    found = _FIELDS.get(type(node))
    if found is None:
        found = _FIELDS[type(node)] = dataclasses.fields(node)
    return found


def can_apply(trees: Sequence[ast.Node], checked: Sequence[Checked], known: Mapping[tuple[str, ...], Any]) -> bool:
    """Whether a ``when`` (its items' checked trees) can be anything but ``false`` given ``known``."""
    merged = Checked()
    for c in checked:
        merged.chains.update(c.chains)
    folded = _Folder(merged, dict(known)).fold(_conjunction(tuple(trees)))
    return not (isinstance(folded, ast.Lit) and folded.value is False)


def _first(item: tuple[int, Any, Any]) -> int:
    return item[0]


def _conjunction(trees: tuple[ast.Node, ...]) -> ast.Node:
    if len(trees) == 1:
        return trees[0]
    return ast.Logic("&&", trees, trees[0].line, trees[0].column)


class _Folder:
    """Replaces known fields by their values and folds what becomes constant."""

    def __init__(self, checked: Checked, known: dict[tuple[str, ...], Any]) -> None:
        self.checked = checked
        self.known = known
        self.keep: list[ast.Node] = []  # rebuilt nodes' originals stay alive: ids key ``checked``
        self.done: dict[int, ast.Node] = {}

    def fold(self, node: ast.Node) -> ast.Node:
        if not self.known:
            return node
        return self._fold(node)

    def _fold(self, node: ast.Node) -> ast.Node:
        done = self.done.get(id(node))  # conditions shared by several rules are one tree: fold it once
        if done is None:
            done = self.done[id(node)] = self._fold_once(node)
        return done

    def _fold_once(self, node: ast.Node) -> ast.Node:
        if isinstance(node, (ast.Ident, ast.Select)):
            resolved = self.checked.chains.get(id(node))
            if resolved is not None and (resolved[0], *resolved[1]) in self.known:
                return ast.Lit(self.known[(resolved[0], *resolved[1])], node.line, node.column)
            return node
        if isinstance(node, ast.Comprehension):
            return node  # its variables shadow; nothing known inside is worth the care
        changes: dict[str, Any] = {}
        for f in _fields(node):
            value = getattr(node, f.name)
            if isinstance(value, ast.Node.__args__):  # type: ignore[attr-defined,unused-ignore]
                new = self._fold(value)
                if new is not value:
                    changes[f.name] = new
            elif isinstance(value, tuple) and value and isinstance(value[0], ast.Node.__args__):  # type: ignore[attr-defined,unused-ignore]
                items = tuple(self._fold(v) for v in value)
                if any(a is not b for a, b in zip(items, value, strict=True)):
                    changes[f.name] = items
        if changes:
            self.keep.append(node)
            node = dataclasses.replace(node, **changes)  # type: ignore[type-var,unused-ignore]
        return self._constant(node)

    @staticmethod
    def _constant(node: ast.Node) -> ast.Node:
        lit = ast.Lit
        if isinstance(node, ast.Binary) and node.op in ("==", "!=", "in") and isinstance(node.left, lit):
            left = node.left.value
            if type(left) not in (str, int):
                return node
            if node.op == "in" and isinstance(node.right, ast.ListLit) and all(
                isinstance(i, lit) and type(i.value) is type(left) for i in node.right.items
            ):
                return lit(left in [i.value for i in node.right.items], node.line, node.column)  # type: ignore[union-attr]
            if node.op != "in" and isinstance(node.right, lit) and type(node.right.value) is type(left):
                return lit((left == node.right.value) == (node.op == "=="), node.line, node.column)
            return node
        if isinstance(node, ast.Unary) and node.op == "!" and isinstance(node.operand, lit) and type(node.operand.value) is bool:
            return lit(not node.operand.value, node.line, node.column)
        if isinstance(node, ast.Logic):
            decide = node.op == "||"  # the value that decides the chain
            rest = []
            for operand in node.operands:
                if isinstance(operand, lit) and type(operand.value) is bool:
                    if operand.value is decide:
                        return lit(decide, node.line, node.column)
                    continue  # the neutral value: drop it
                rest.append(operand)
            if not rest:
                return lit(not decide, node.line, node.column)
            if len(rest) == 1:
                # ``x && true`` is ``x`` only when x is a bool or an error; keep the chain otherwise
                return ast.Logic(node.op, (rest[0], lit(not decide, 0, 0)), node.line, node.column) if not boolish(rest[0]) else rest[0]
            return ast.Logic(node.op, tuple(rest), node.line, node.column) if len(rest) != len(node.operands) else node
        if isinstance(node, ast.Cond) and isinstance(node.cond, lit) and type(node.cond.value) is bool:
            return node.then if node.cond.value else node.otherwise
        return node


def structure(node: ast.Node, keys: dict[int, Key], sizes: dict[int, int]) -> Key:
    """A key equal for structurally equal trees (positions ignored), recorded for every node."""
    found = keys.get(id(node))
    if found is not None:
        return found
    parts: list[Any] = [type(node).__name__]
    size = 1
    for f in _fields(node):
        if f.name in ("line", "column"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, ast.Node.__args__):  # type: ignore[attr-defined,unused-ignore]
            parts.append(structure(value, keys, sizes))
            size += sizes[id(value)]
        elif isinstance(value, tuple):
            items = []
            for v in value:
                if isinstance(v, tuple):  # map entries
                    items.append(tuple(structure(x, keys, sizes) for x in v))
                    size += sum(sizes[id(x)] for x in v)
                else:
                    items.append(structure(v, keys, sizes))
                    size += sizes[id(v)]
            parts.append(tuple(items))
        elif f.name == "value":
            parts.append((type(value).__name__, repr(value)))  # 0.0 and -0.0, 1 and True differ
        else:
            parts.append(value)
    key = tuple(parts)
    keys[id(node)] = key
    sizes[id(node)] = size
    return key


class _SharedGen(CodeGen):
    def __init__(self, checked: Checked, functions: Mapping[str, fn.CelFunction], trees: list[ast.Node]) -> None:
        super().__init__(checked, functions)
        self.keys: dict[int, Key] = {}
        self.sizes: dict[int, int] = {}
        counts: Counter[Key] = Counter()
        weights: Counter[int] = Counter(id(t) for t in trees)  # a tree shared by rules is walked once
        for tree in {id(t): t for t in trees}.values():
            structure(tree, self.keys, self.sizes)
            _count(tree, self.keys, counts, weights[id(tree)])
        # A field path is cheaper to read again than to memoise; the rest is worth sharing.
        self.shared = {k for k, n in counts.items() if n > 1 and k[0] not in ("Lit", "Ident", "Select")}
        small = {self.keys[i] for i, size in self.sizes.items() if size < _MEMO_MIN}
        self.shared -= small  # reading a memo costs about what a `has()` or a comparison costs
        self.roots = sorted({r[0] for r in checked.chains.values() if r is not None and "." not in r[0]})
        self.slots: dict[Key, int] = {}
        self.helper_of: dict[Key, str] = {}
        self.memo = True  # off inside comprehensions and outlined helpers (they cannot see ``M``)

    def gen(self, node: ast.Node) -> str:
        key = self.keys.get(id(node))
        if not self.memo or self.scopes or key is None or key not in self.shared:
            return super().gen(node)
        known = self.available[-1]
        have = known.get(("memo", key))  # type: ignore[arg-type]
        if have is not None:
            return have
        slot = self.slots.setdefault(key, len(self.slots))
        out = self.tmp("m")
        self.emit(f"{out} = M[{slot}]")
        self.emit(f"if {out} is _UNSET:")
        with self.indented():
            if self.sizes[id(node)] <= _INLINE_MAX:
                value = super().gen(node)
                self.emit(f"{out} = M[{slot}] = {value}")
            else:
                self.emit(f"{out} = {self._shared_helper(key, node)}(act, budget, M)")
        known[("memo", key)] = out  # type: ignore[index]
        return out

    def _shared_helper(self, key: Key, node: ast.Node) -> str:
        name = self.helper_of.get(key)
        if name is None:
            name = self.helper_of[key] = f"_s{len(self.helper_of)}"
            slot = self.slots[key]
            saved = (self.lines, self.depth, self.loops, self.available)
            self.lines, self.depth, self.loops, self.available = [], 1, 0, [{}]
            value = super().gen(node)
            self.emit(f"M[{slot}] = {value}")
            self.emit(f"return {value}")
            self.helpers.append([f"def {name}(act, budget, M):", *self.lines])
            self.lines, self.depth, self.loops, self.available = saved
        return name

    def _outline(self, node: ast.Node) -> str:
        memo, self.memo = self.memo, False
        try:
            return super()._outline(node)
        finally:
            self.memo = memo

    def rule_set(self, plan: list[tuple[int, ast.Node, int, ast.Node | None, int]]) -> str:
        self.emit("if budget is None:")
        self.emit("    budget = _Budget(_UNLIMITED)")
        head = len(self.lines)
        self._load_roots()
        self.emit("out = []")
        entries = [_Entry(i, w, ws, u, us, _conjuncts(w)) for i, w, ws, u, us in plan]
        self.reordered = False
        self._rules(entries, 0)
        if self.reordered:
            self.emit("out.sort()")
        self.emit("return out")
        self.lines.insert(head, "    " + f"M = [_UNSET] * {max(len(self.slots), 1)}")
        main = ["def _rules(act, budget=None):", *self.lines]
        return "\n".join(line for chunk in (*self.helpers, main) for line in chunk) + "\n"

    def _rules(self, entries: list[_Entry], level: int) -> None:
        """Rules sharing a ``when`` conjunct are nested under one test of it: when it is false,
        none of them is looked at (an index on whatever the pack compares, read from the trees)."""
        while entries:
            split = next_group(entries, self.keys, level)
            if split is None:
                for e in entries:
                    self._rule(e, e.rest)
                return
            group, entries, reordered = split
            self.reordered = self.reordered or reordered
            node = group[0].rest[0]
            test = self.named(node)
            self.emit(f"if {test} is True:")
            with self.indented():
                self._rules([e.without_first() for e in group], level + 1)
            # Not a bool (an error): each rule's whole conjunction decides; so does an exhausted
            # budget, which makes every rule with call sites an error (fail closed) as before.
            charged = any(e.when_steps for e in group)
            self.emit(f"elif {test} is not False{' or budget.steps < 0' if charged else ''}:")
            with self.indented():
                for e in group:
                    self._rule(e, None)

    def _rule(self, e: _Entry, conjuncts: list[ast.Node] | None) -> None:
        """One rule: ``conjuncts`` are those left to test (the others are true), or ``None`` for
        its whole ``when`` (a rare path: one helper function per rule, not a copy of its code)."""
        self.emit(f"# rule {e.index}")
        if conjuncts is None:
            self._side("w", e.when, e.when_steps, whole=True)
        else:
            tree = conjuncts[0] if len(conjuncts) == 1 else ast.Logic("&&", tuple(conjuncts), 0, 0) if conjuncts else ast.Lit(True, 0, 0)
            self._side("w", tree, e.when_steps)
        self.emit("if w is not False:")
        with self.indented():
            if e.unless is None:
                self.emit(f"out.append(({e.index}, w, None))")
            else:
                self.emit("if w is True:")
                with self.indented():
                    self._side("u", e.unless, e.unless_steps)
                self.emit("else:")
                self.emit("    u = None")
                self.emit(f"out.append(({e.index}, w, u))")

    def _load_roots(self) -> None:
        """Read the activation's variables once, up front (the activation is read-only)."""
        for root in self.roots:
            out = self.tmp("a")
            self.emit("try:")
            self.emit(f"    {out} = act[{root!r}]")
            self.emit("except Exception:")
            self.emit(f"    {out} = _variable(act, {root!r})")
            self.available[-1][(root,)] = out

    def _side(self, name: str, tree: ast.Node, steps: int, whole: bool = False) -> None:
        if whole:
            key = self.keys[id(tree)]
            self.slots.setdefault(key, len(self.slots))
            value = lambda: f"{self._shared_helper(key, tree)}(act, budget, M)"  # noqa: E731
        else:
            value = lambda: self.gen(tree)  # noqa: E731
        if steps:
            self.emit(f"budget.steps -= {steps}")
            self.emit("if budget.steps < 0:")
            self.emit(f"    {name} = _BUDGET")
            self.emit("else:")
            with self.indented():
                self.emit(f"{name} = {value()}")  # type: ignore[no-untyped-call,unused-ignore]
        else:
            self.emit(f"{name} = {value()}")  # type: ignore[no-untyped-call,unused-ignore]


def next_group(entries: list[_Entry], keys: dict[int, Key], level: int) -> tuple[list[_Entry], list[_Entry], bool] | None:
    """The rules to nest under one test of a shared first conjunct, the rest, and whether the
    rest holds a rule listed before one of the group (the output is then sorted); ``None``: no
    conjunct is shared by two rules (or nesting is deep enough).  Both generators (this one and
    :mod:`._optimistic`) group by it, so they evaluate, and charge, the same rules."""
    # Only each rule's first untested conjunct is a candidate: conjuncts are tested in the
    # order written, so a guard (``has(request.place)``) comes before what it guards.
    tally: Counter[Key] = Counter(keys[id(e.rest[0])] for e in entries if e.rest and id(e.rest[0]) in keys)
    best = tally.most_common(1)
    if level >= _MAX_LEVELS or not best or best[0][1] < 2:
        return None
    key = best[0][0]
    first = [bool(e.rest) and keys.get(id(e.rest[0])) == key for e in entries]
    group = [e for e, hit in zip(entries, first, strict=True) if hit]
    later = [e for e, hit in zip(entries, first, strict=True) if not hit]
    return group, later, bool(later) and min(e.index for e in later) < max(e.index for e in group)


@dataclasses.dataclass
class _Entry:
    index: int
    when: ast.Node
    when_steps: int
    unless: ast.Node | None
    unless_steps: int
    rest: list[ast.Node]  # the ``when`` conjuncts not yet tested by an enclosing group

    def without_first(self) -> _Entry:
        return dataclasses.replace(self, rest=self.rest[1:])


def _conjuncts(node: ast.Node) -> list[ast.Node]:
    """The operands of a (nested) ``&&`` chain: CEL's ``&&`` is commutative, errors included."""
    if isinstance(node, ast.Logic) and node.op == "&&":
        return [c for operand in node.operands for c in _conjuncts(operand)]
    return [node]


def _count(node: ast.Node, keys: dict[int, Key], counts: Counter[Key], weight: int) -> None:
    counts[keys[id(node)]] += weight
    if isinstance(node, ast.Comprehension):
        return  # shared only as a whole: its body refers to its own variables
    for f in _fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast.Node.__args__):  # type: ignore[attr-defined,unused-ignore]
            _count(value, keys, counts, weight)
        elif isinstance(value, tuple):
            for v in value:
                for x in v if isinstance(v, tuple) else (v,):
                    _count(x, keys, counts, weight)
