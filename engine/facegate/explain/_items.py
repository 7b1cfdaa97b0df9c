"""A rule's conditions split into the items a person can act on, each in plain words and compiled.

A ``when`` item such as ``variables.consent_in_force`` is one opaque name to the engine; to a
legal team it is six facts.  :func:`rule_items` opens every item that is a variable whose
expression is a conjunction (recursively) and splits it into its conjuncts, keeping each
``has()`` guard with the conjunct it protects (``has(request.consent) && has(request.consent.type)
&& request.consent.type in [...]`` is one item: *consent type is one of "separate", "written"*).
Each item is compiled on its own so a decision can say which of them failed.

Built once per policy, on the first deny that needs it (:func:`items_for`), and cached.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import _compile
from .._pack import Rule, _expand, _json_type
from ..review._plain import Node, PlainRenderer, _Parser, _Unsupported


@dataclass(frozen=True)
class Item:
    """One condition a person can act on: its CEL text (as written), plain words, program."""

    text: str
    expanded: str
    plain: str
    run: Any  # (activation, budget) -> value
    paths: frozenset[tuple[str, ...]]  # request fields it reads or tests (without the "request" root)
    reads: frozenset[tuple[str, ...]] = frozenset()  # of those, the ones whose value it reads
    program: Any = None  # the compiled program (its checked tree): items are fused per operation (._unmet)


@dataclass(frozen=True)
class RuleItems:
    rule: Rule
    when: tuple[Item, ...]
    unless: tuple[Item, ...]  # the rule is excepted when every one of these is true


class PolicyItems:
    """Every rule's items, by rule id, for one policy."""

    def __init__(self, policy: Any) -> None:
        pack = policy.pack
        self.docs = {v["name"]: str(v.get("description", v["name"])).strip() for v in pack.variables}
        self.raw = {v["name"]: v["expression"] for v in pack.variables}
        self.expanded: dict[str, str] = {}
        for v in pack.variables:  # variables may use earlier ones, as the loader expands them
            self.expanded[v["name"]] = _expand(v["expression"], self.expanded)[0]
        self.renderer = PlainRenderer(pack.parameters, self.docs)
        self.schema = _activation_schema(policy)
        self.by_operation: dict[str, tuple[Rule, ...]] = dict(getattr(policy, "_by_operation", None) or {})
        self.all_rules: tuple[Rule, ...] = tuple(pack.rules)
        self.make_activation = getattr(policy, "_activation", None) or (lambda r: {"params": pack.parameters, "request": r})
        from ._facts import actionable_for

        self.actionable = actionable_for(policy)  # remedies.yaml, or the default list
        self.functions = pack.functions
        self.request_schema: dict[str, Any] | None = getattr(policy, "request_schema", None)  # what a decided request passed
        self.fused: dict[tuple[str, tuple[str, ...]], Any] = {}  # (operation, permit ids) -> fused items (._unmet)
        self.rules: dict[str, RuleItems] = {}
        for rule in pack.rules:
            when = tuple(i for c in rule.when for i in self.split(c.text, c.expanded, c.program))
            unless = tuple(i for c in rule.unless for i in self.split(c.text, c.expanded, c.program))
            self.rules[rule.id] = RuleItems(rule, when, unless)

    def relevant(self, operation: Any) -> tuple[Rule, ...]:
        """The rules that can apply to ``operation`` (all of them when the engine keeps no index)."""
        return self.by_operation.get(operation, self.all_rules) if isinstance(operation, str) else self.all_rules

    def words(self, text: str) -> str:
        spans = self.renderer.render(text)
        return "".join(f"`{t}`" if k == "code" else t for k, t in spans).strip()

    def split(self, text: str, expanded: str, program: Any) -> list[Item]:
        """The items of one condition; the whole condition when it cannot be split safely."""
        whole = Item(text, expanded, self.words(text), program.program.run, _paths(program.program), _reads(program.program),
                     program.program)
        try:
            parts = self.conjuncts(text)
        except _Unsupported:
            return [whole]
        if len(parts) <= 1:
            return [whole]
        items = []
        for part, shown in parts:
            exp = _expand(part, self.expanded)[0]
            try:
                compiled = _compile.compile_expression(exp, schema=self.schema, functions=_functions()).program
            except _compile.CompileError:
                return [whole]  # e.g. a plugin function: keep the rule's own program
            items.append(Item(part, exp, self.words(shown), compiled.run, _paths(compiled), _reads(compiled), compiled))
        return items

    def conjuncts(self, text: str) -> list[tuple[str, str]]:
        """Top-level ``&&`` parts of ``text`` with variables that are conjunctions opened, guards kept
        with the part they guard: (text to evaluate, text to show in words)."""
        node = _Parser(text).parse()
        flat: list[tuple[Node, str, str | None]] = []  # (node, text, words when already split)
        for part in _and_parts(node):
            src = text[part.start : part.end]
            name = _variable_name(part)
            if name is not None and name in self.raw:
                inner = self.conjuncts(self.raw[name])
                if len(inner) > 1:
                    flat.extend((_Parser(s).parse(), s, shown) for s, shown in inner)
                    continue
            flat.append((part, src, None))
        guards = [_guarded_path(part) if shown is None else None for part, _, shown in flat]
        out: list[tuple[str, str]] = []
        for i, (part, src, shown) in enumerate(flat):
            guarded = guards[i]
            if guarded is not None and any(_mentions(later, guarded) for later, _, _ in flat[i + 1 :]):
                continue  # a guard: it travels with every later part that needs it
            needed = [flat[j][1] for j, g in enumerate(guards[:i]) if g is not None and _mentions(part, g)
                      and any(_mentions(later, g) for later, _, _ in flat[j + 1 :])]
            if shown is not None:  # split already (inside a variable): keep its words, add outer guards
                out.append((" && ".join([*needed, f"({src})"]) if needed else src, shown))
            elif needed and part.kind == "unop" and part.value == "!":
                # a "must not" part holds while its object is unstated: it is not an obstacle then
                out.append((f"!({' && '.join(needed)}) || {src}", src))
            else:
                joined = " && ".join([*needed, src])
                out.append((joined, joined))
        return out


_lock = threading.Lock()


def _functions() -> Mapping[str, Any]:
    from .._plugins import builtin_functions

    return builtin_functions()


def items_for(policy: Any) -> PolicyItems:
    """The policy's items, built on first use and kept on the policy object."""
    found = policy.__dict__.get("_explain_items")
    if found is None:
        with _lock:
            found = policy.__dict__.get("_explain_items")
            if found is None:
                found = PolicyItems(policy)
                policy.__dict__["_explain_items"] = found
    return found  # type: ignore[no-any-return]


def request_schema(policy: Any) -> Mapping[str, Any]:
    """The JSON Schema of the requests ``policy`` decides: its vocabularies drive remedies and analysis."""
    own = getattr(policy, "request_schema", None) or getattr(policy.pack, "request_schema", None)
    if isinstance(own, Mapping):
        return own
    from .. import _schema

    return _schema.load_schema("request.v1.json")


def _activation_schema(policy: Any) -> Mapping[str, Any]:
    params = {k: _json_type(v) for k, v in policy.pack.parameters.items()}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {"request": request_schema(policy), "params": {"type": "object", "additionalProperties": False, "properties": params}},
    }


def _paths(program: Any) -> frozenset[tuple[str, ...]]:
    found = set()
    for p in (*program.reference_paths, *program.presence_paths):
        if p and p[0] == "request" and len(p) > 1:
            found.add(tuple(p[1:]))
    return frozenset(found)


def _reads(program: Any) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(p[1:]) for p in program.reference_paths if p and p[0] == "request" and len(p) > 1)


def _and_parts(node: Node) -> list[Node]:
    if node.kind == "binop" and node.value == "&&":
        return _and_parts(node.args[0]) + _and_parts(node.args[1])
    return [node]


def _path(node: Node) -> str | None:
    if node.kind == "ident":
        return str(node.value)
    if node.kind == "sel":
        base = _path(node.args[0])
        return f"{base}.{node.value}" if base else None
    return None


def _variable_name(node: Node) -> str | None:
    p = _path(node)
    if p is not None and p.startswith("variables.") and p.count(".") == 1:
        return p.split(".", 1)[1]
    return None


def _guarded_path(node: Node) -> str | None:
    if node.kind == "call" and node.value == "has" and len(node.args) == 2:
        return _path(node.args[1])
    return None


def _mentions(node: Node, path: str) -> bool:
    p = _path(node)
    if p is not None and (p == path or p.startswith(path + ".")):
        return True
    return any(_mentions(a, path) for a in node.args)
