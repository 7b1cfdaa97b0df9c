"""Conditions in plain words: a small CEL parser and renderer (documents only; the engine never uses it)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._blocks import C, Inline, T, _fold

# ------------------------------------------------------------------------------------------------
# a small CEL parser (only to show conditions in words; the engine never uses it)


class _Unsupported(Exception):
    pass


_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')|(?P<num>\d+(?:\.\d+)?)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-*/%?:.()\[\],{}]))"""
)


@dataclass
class Node:
    kind: str  # lit, ident, sel, call, unop, binop, list, cond, index
    start: int
    end: int
    value: Any = None
    args: list[Node] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise _Unsupported(text[pos:])
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind), m.end(kind)))
            pos = m.end()
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.tokens):
            return False
        kind, tok, _, _ = self.tokens[self.i]
        return value is None or (tok == value and kind == "op")

    def take(self, value: str | None = None) -> tuple[str, str, int, int]:
        if self.i >= len(self.tokens) or (value is not None and not self.peek(value)):
            raise _Unsupported(f"expected {value}")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.cond()
        if self.i != len(self.tokens):
            raise _Unsupported("trailing input")
        return node

    def cond(self) -> Node:
        node = self.binary(0)
        if self.peek("?"):
            self.take("?")
            a = self.cond()
            self.take(":")
            b = self.cond()
            return Node("cond", node.start, b.end, None, [node, a, b])
        return node

    LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self.LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.i < len(self.tokens):
            kind, tok, _, _ = self.tokens[self.i]
            if tok not in self.LEVELS[level] or kind not in ("op", "id"):
                break
            self.i += 1
            right = self.binary(level + 1)
            node = Node("binop", node.start, right.end, tok, [node, right])
        return node

    def unary(self) -> Node:
        if self.peek("!") or self.peek("-"):
            _, tok, start, _ = self.take()
            inner = self.unary()
            return Node("unop", start, inner.end, tok, [inner])
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.take(".")
                kind, name, _, end = self.take()
                if kind != "id":
                    raise _Unsupported("field name")
                if self.peek("("):
                    args, end = self.call_args()
                    node = Node("call", node.start, end, name, [node, *args])
                else:
                    node = Node("sel", node.start, end, name, [node])
            elif self.peek("["):
                self.take("[")
                idx = self.cond()
                _, _, _, end = self.take("]")
                node = Node("index", node.start, end, None, [node, idx])
            else:
                return node

    def call_args(self) -> tuple[list[Node], int]:
        self.take("(")
        args: list[Node] = []
        while not self.peek(")"):
            args.append(self.cond())
            if not self.peek(")"):
                self.take(",")
        _, _, _, end = self.take(")")
        return args, end

    def primary(self) -> Node:
        kind, tok, start, end = self.take()
        if kind == "str":
            return Node("lit", start, end, _unquote(tok))
        if kind == "num":
            return Node("lit", start, end, float(tok) if "." in tok else int(tok))
        if kind == "id":
            if tok in ("true", "false"):
                return Node("lit", start, end, tok == "true")
            if tok == "null":
                return Node("lit", start, end, None)
            if self.peek("("):
                args, end = self.call_args()
                return Node("call", start, end, tok, [Node("lit", start, start, None), *args])
            return Node("ident", start, end, tok)
        if tok == "(":
            inner = self.cond()
            _, _, _, end = self.take(")")
            return Node(inner.kind, start, end, inner.value, inner.args)
        if tok == "[":
            items: list[Node] = []
            while not self.peek("]"):
                items.append(self.cond())
                if not self.peek("]"):
                    self.take(",")
            _, _, _, end = self.take("]")
            return Node("list", start, end, None, items)
        raise _Unsupported(tok)


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


# ------------------------------------------------------------------------------------------------
# CEL -> plain English

FIELD_LABELS: dict[str, str] = {
    "operation": "operation",
    "attributes": "attributes to infer",
    "purpose": "declared purpose",
    "jurisdiction": "jurisdiction",
    "actor.role": "actor's role",
    "actor.sector": "actor's sector",
    "actor.stored_persons": "number of people whose face data the actor stores",
    "actor.filing": "filing status",
    "actor.pia.completed": "impact assessment completed",
    "actor.pia.covers_purpose": "impact assessment covers the purpose",
    "place.type": "place type",
    "place.private_kind": "kind of private space",
    "place.signage": "notice signs present",
    "capture.mode": "capture mode",
    "capture.source": "capture source",
    "capture.purpose_prompt_shown": "purpose prompt shown",
    "capture.initiated_by": "who initiated the capture",
    "subject.age": "subject's age",
    "subject.declined_face": "subject declined face recognition",
    "consent.type": "consent type",
    "consent.given_by": "who gave the consent",
    "consent.purposes": "consented purposes",
    "consent.withdrawn": "consent withdrawn",
    "legal_basis.ground": "legal ground",
    "legal_basis.citation": "legal citation",
    "alternative.offered": "non-face alternative offered",
    "storage.raw_image": "raw-image handling",
    "storage.location": "storage location",
    "storage.retention_days": "retention days",
    "review.human_review": "human review",
}

_COMPARE = {"<": "is under", "<=": "is at most", ">": "is more than", ">=": "is at least"}


class PlainRenderer:
    """Render one CEL condition as plain English spans; unknown shapes fall back to code."""

    def __init__(self, params: Mapping[str, Any], variables: Mapping[str, str]) -> None:
        self.params = params
        self.variables = variables
        self.fallbacks = 0

    def render(self, text: str) -> Inline:
        try:
            node = _Parser(text).parse()
            spans = self.node(node, text)
        except _Unsupported:
            self.fallbacks += 1
            return [C(_fold(text))]
        return _merge(spans)

    # -- helpers
    def path(self, node: Node) -> str | None:
        if node.kind == "ident":
            return str(node.value)
        if node.kind == "sel":
            base = self.path(node.args[0])
            return f"{base}.{node.value}" if base else None
        return None

    def label(self, path: str) -> Inline:
        root, _, rest = path.partition(".")
        if root == "request" and rest:
            return [T(FIELD_LABELS.get(rest, rest.replace(".", " ").replace("_", " ")))]
        if root == "params" and rest in self.params:
            return [T("parameter "), C(rest), T(f" ({_value(self.params[rest])})")]
        if root == "variables" and rest in self.variables:
            return [T(self.variables[rest])]
        raise _Unsupported(path)

    def operand(self, node: Node) -> Inline:
        if node.kind == "lit":
            return [T(_value(node.value))]
        if node.kind == "list" and all(a.kind == "lit" for a in node.args):
            return [T(_value([a.value for a in node.args]))]
        p = self.path(node)
        if p is None:
            raise _Unsupported("operand")
        return self.label(p)

    def is_guard(self, node: Node) -> str | None:
        if node.kind == "call" and node.value == "has" and len(node.args) == 2:
            return self.path(node.args[1])
        return None

    def mentions(self, node: Node, path: str) -> bool:
        p = self.path(node)
        if p is not None and (p == path or p.startswith(path + ".")):
            return True
        return any(self.mentions(a, path) for a in node.args)

    def conjuncts(self, node: Node) -> list[Node]:
        if node.kind == "binop" and node.value == "&&":
            return self.conjuncts(node.args[0]) + self.conjuncts(node.args[1])
        return [node]

    def disjuncts(self, node: Node) -> list[Node]:
        if node.kind == "binop" and node.value == "||":
            return self.disjuncts(node.args[0]) + self.disjuncts(node.args[1])
        return [node]

    def without_guards(self, items: list[Node]) -> list[Node]:
        """Drop ``has(x)`` when a later item tests ``x`` (the guard only avoids an error)."""
        out = []
        for i, item in enumerate(items):
            guarded = self.is_guard(item)
            if guarded and any(self.mentions(other, guarded) for other in items[i + 1 :]):
                continue
            out.append(item)
        return out

    # -- the renderer proper
    def node(self, node: Node, text: str) -> Inline:
        if node.kind == "binop" and node.value == "&&":
            items = self.without_guards(self.conjuncts(node))
            if len(items) == 1:
                return self.node(items[0], text)
            return _join([self.grouped(i, text, "||") for i in items], " and ")
        if node.kind == "binop" and node.value == "||":
            parts = [self.grouped(i, text, "&&") for i in self.disjuncts(node)]
            if len(parts) == 2:
                return [T("either ")] + parts[0] + [T(", or ")] + parts[1]
            return [T("any of: ")] + _join(parts, "; ")
        if node.kind == "unop" and node.value == "!":
            return self.negated(node.args[0], text)
        if node.kind == "call":
            return self.call(node, text)
        if node.kind == "binop":
            return self.relation(node, negate=False)
        p = self.path(node)
        if p is not None:
            if p.startswith("variables."):
                return self.label(p)
            return self.label(p) + [T(" is true")]
        if node.kind == "lit" and isinstance(node.value, bool):
            return [T("always" if node.value else "never")]
        raise _Unsupported(node.kind)

    def grouped(self, node: Node, text: str, other: str) -> Inline:
        """Bracket an ``||`` inside an ``&&`` (and the reverse) so the words keep CEL's grouping."""
        if node.kind == "binop" and node.value == other:
            if other == "&&" and len(self.without_guards(self.conjuncts(node))) == 1:
                return self.node(node, text)
            return [T("(")] + self.node(node, text) + [T(")")]
        return self.node(node, text)

    def negated(self, inner: Node, text: str) -> Inline:
        items = self.conjuncts(inner)
        if len(items) > 1:
            kept = self.without_guards(items)
            if len(kept) == 1:
                if self.is_guard(kept[0]):  # !(has(x) && has(x.y)): "x y is not stated"
                    return self.negated(kept[0], text)
                # !(has(x) && x == v): "x is not v (or not stated)"
                return self.negated(kept[0], text) + [T(" (or not stated)")]
            return [T("not (")] + self.node(inner, text) + [T(")")]
        guarded = self.is_guard(inner)
        if guarded:
            return self.label(guarded) + [T(" is not stated")]
        if inner.kind == "binop" and inner.value in ("==", "!=", "in", "<", "<=", ">", ">="):
            return self.relation(inner, negate=True)
        p = self.path(inner)
        if p is not None:
            if p.startswith("variables."):
                return [T("NOT: ")] + self.label(p)
            return self.label(p) + [T(" is not true")]
        return [T("not (")] + self.node(inner, text) + [T(")")]

    def relation(self, node: Node, *, negate: bool) -> Inline:
        op = str(node.value)
        left, right = node.args
        if op == "in":
            lhs = self.operand(left)
            rp = self.path(right)
            if right.kind == "list" and all(a.kind == "lit" for a in right.args):
                values = [a.value for a in right.args]
                if len(values) == 1:
                    return lhs + [T((" is not " if negate else " is ") + _value(values[0]))]
                return lhs + [T((" is none of " if negate else " is one of ") + _value(values))]
            if rp is not None and rp.startswith("params."):
                return lhs + [T(" is not one of " if negate else " is one of ")] + self.label(rp)
            if rp is not None:
                return lhs + [T(" is not among " if negate else " is among ")] + self.label(rp)
            raise _Unsupported("in")
        if op in ("==", "!="):
            positive = (op == "==") != negate
            if right.kind == "lit" and isinstance(right.value, bool):
                truth = right.value == positive
                return self.operand(left) + [T(" is true" if truth else " is not true")]
            return self.operand(left) + [T(" is ") if positive else T(" is not ")] + self.operand(right)
        if op in _COMPARE:
            if negate:
                op = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}[op]
            if left.kind == "call" and left.value == "size" and right.kind == "lit" and right.value == 0 and op == ">":
                return self.operand(left.args[1]) + [T(" is not empty")]
            return self.operand(left) + [T(f" {_COMPARE[op]} ")] + self.operand(right)
        raise _Unsupported(op)

    def call(self, node: Node, text: str) -> Inline:
        name, target, args = node.value, node.args[0], node.args[1:]
        if name == "has" and len(args) == 1:
            p = self.path(args[0])
            if p is None:
                raise _Unsupported("has")
            return self.label(p) + [T(" is stated")]
        if name == "startsWith" and len(args) == 1 and args[0].kind == "lit":
            return self.operand(target) + [T(" starts with " + _value(args[0].value))]
        if name in ("exists", "all") and len(args) == 2 and args[0].kind == "ident":
            var, body = str(args[0].value), args[1]
            if body.kind == "binop" and body.value == "in" and self.path(body.args[0]) == var:
                coll = self.path(body.args[1])
                if coll is not None:
                    head = "any of the " if name == "exists" else "every one of the "
                    return [T(head)] + self.operand(target) + [T(" is one of ")] + self.label(coll)
        raise _Unsupported(str(name))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, str):
        return f"“{v}”"
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v)
    return str(v)


def _join(parts: Sequence[Inline], sep: str) -> Inline:
    out: Inline = []
    for i, p in enumerate(parts):
        if i:
            out.append(T(sep))
        out.extend(p)
    return out


def _merge(spans: Inline) -> Inline:
    out: Inline = []
    for kind, text in spans:
        if out and out[-1][0] == kind == "text":
            out[-1] = ("text", out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def plain(text: str, params: Mapping[str, Any] | None = None, variables: Mapping[str, str] | None = None) -> str:
    """A condition in plain words, code spans in backticks (handy for tests and the CLI)."""
    spans = PlainRenderer(params or {}, variables or {}).render(text)
    return "".join(f"`{t}`" if k == "code" else t for k, t in spans)


