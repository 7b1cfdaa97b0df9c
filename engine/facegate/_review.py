"""``facegate docs``: the review document a legal team reads to sign a pack off.

One neutral document model (headings, paragraphs, quotes, tables, lists of inline spans) is built
from the loaded pack, its case files and the optional ``open-questions.yaml`` beside ``pack.yaml``,
then written twice: ``REVIEW.md`` and ``REVIEW.html`` (inline stylesheet, no script, every value
escaped).  The output is deterministic -- no timestamps, no decision ids -- so a test can regenerate
it and fail when the committed copy is stale.

Conditions are shown in plain words by a small renderer for the CEL patterns packs use
(``has(x) && x == "v"`` -> *x is "v"*); anything it does not know is shown as CEL in code style.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._cases import Report, load_cases, run_pack_tests
from ._yaml import load_yaml
from .errors import PolicyError, Problem
from .policy import Policy

QUESTIONS_FILE = "open-questions.yaml"

# ------------------------------------------------------------------------------------------------
# inline spans and blocks

Span = tuple[str, str]  # (kind, text); kind is text | code | bold | link ("#target|label") | anchor
Inline = list[Span]


def T(text: str) -> Span:
    return ("text", text)


def C(text: str) -> Span:
    return ("code", text)


def B(text: str) -> Span:
    return ("bold", text)


def L(url: str) -> Span:
    return ("link", url)


@dataclass
class Heading:
    level: int
    content: Inline
    anchor: str


@dataclass
class Para:
    content: Inline
    css: str = ""


@dataclass
class Bilingual:
    """The law text: Chinese beside English."""

    zh: str
    en: str


@dataclass
class Table:
    header: list[Inline]
    rows: list[list[Inline]]


@dataclass
class Items:
    items: list[Inline | tuple[Inline, list[Inline]]]
    ordered: bool = False


@dataclass
class Notice:
    title: str
    paragraphs: list[tuple[str, str]]  # (lang, text)


Block = Heading | Para | Bilingual | Table | Items | Notice

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


# ------------------------------------------------------------------------------------------------
# open questions


@dataclass(frozen=True)
class Question:
    id: str
    origin: str
    provisions: tuple[str, ...]
    en: str
    zh: str


def load_questions(root: Path) -> list[Question]:
    path = root / QUESTIONS_FILE
    if not path.is_file():
        return []
    doc, problems = load_yaml(path, f"{root.name}/{QUESTIONS_FILE}")
    if doc is None:
        raise PolicyError(problems)
    items = doc.data.get("questions") if isinstance(doc.data, dict) else None
    if not isinstance(items, list) or set(doc.data) != {"questions"}:
        raise PolicyError([doc.problem("", "expected one key `questions` holding a list")])
    out: list[Question] = []
    allowed = {"id", "origin", "provisions", "en", "zh"}
    for i, q in enumerate(items):
        ok = isinstance(q, dict) and {"id", "en"} <= set(q) <= allowed and all(
            isinstance(q.get(k, ""), str) for k in ("id", "origin", "en", "zh")
        ) and isinstance(q.get("provisions", []), list)
        if not ok:
            raise PolicyError([doc.problem(f"/questions/{i}", f"a question needs `id` and `en` (optional: origin, provisions, zh); allowed keys: {', '.join(sorted(allowed))}")])
        out.append(Question(q["id"], q.get("origin", ""), tuple(str(p) for p in q.get("provisions", [])), _fold(q["en"]), _fold(q.get("zh", ""))))
    return out


# ------------------------------------------------------------------------------------------------
# building the document

GRADES = {
    "A": "Chinese text seen in a full-text reproduction of the official text, with the article number",
    "B": "article number and content confirmed by a reliable translation",
    "C": "wording printed identically by media reporting the text; number and article boundary unverified",
    "D": "content known only from paraphrase; no verbatim text",
    "X": "text not found",
}

EFFECTS = {
    "forbid": "forbid — denies the request when it applies (overrides every permit)",
    "permit": "permit — allows the request when it applies and nothing forbids it",
    "obligation": "obligation — attaches duties to a permitted request",
    "advice": "advice — a warning that never blocks",
}

MODES = {
    "enforce": "enforce",
    "warn": "warn — a forbid that only warns, never blocks",
    "audit": "audit — evaluated and recorded only",
}


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _article(number: str | None, verified: bool, note: str | None = None) -> str:
    text = "number unknown" if number is None else f"Art. {number}" + ("" if verified else " (numbering unverified)")
    return text + (f" — {_fold(note)}" if note and _fold(note) != text else "")


def _review_line(review: Mapping[str, Any]) -> Inline:
    status = review.get("status", "not stated")
    reviewer = review.get("reviewer") or "—"
    date = review.get("date") or "—"
    spans: Inline = [B(str(status)), T(f" · reviewer: {reviewer} · date: {date}")]
    if review.get("notes"):
        spans += [T(" · "), *_prose(str(review["notes"]))]
    return spans


_CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _fold(text: str) -> str:
    """One line: whitespace runs become one space, and none is left between Chinese characters."""
    return _CJK_GAP.sub("", " ".join(str(text).split()))


def _prose(text: str) -> Inline:
    """Folded free text from the pack; `backticked` words become code spans."""
    parts = _fold(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: keep the text as it is
        return [T(_fold(text))]
    return [C(p) if i % 2 else T(p) for i, p in enumerate(parts) if p]


def _clean(text: str) -> str:
    """Fold YAML-folded text into paragraphs separated by blank lines."""
    paras = [_fold(p) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paras if p)


def _rel(file: str, root: Path) -> str:
    parts = Path(file).parts
    name = root.resolve().name
    return str(Path(*parts[1:])) if len(parts) > 1 and parts[0] == name else file


def _article_notes(root: Path, policy: Policy) -> dict[str, str]:
    """``article.note`` of each provision (the loaded :class:`Provision` does not keep it)."""
    notes: dict[str, str] = {}
    for path in [root / "pack.yaml", *sorted(root.glob("rules/*.yaml")), *sorted(root.glob("rules/*.yml"))]:
        if not path.is_file():
            continue
        doc, _ = load_yaml(path)
        for spec in (doc.data.get("provisions", []) if doc is not None and isinstance(doc.data, dict) else []):
            note = spec.get("article", {}).get("note") if isinstance(spec, dict) else None
            if isinstance(note, str):
                notes[str(spec.get("provision"))] = note
    for rule in policy.rules:  # provisions known only through their rules: the first rule's note
        note = rule.source["article"].get("note")
        if isinstance(note, str):
            notes.setdefault(rule.provision, note)
    return notes


def build(policy: Policy) -> list[Block]:
    pack = policy.pack
    meta = pack.meta
    root = pack.root if pack.root.is_dir() else pack.root.parent
    report = run_pack_tests(policy)
    cases = {c["id"]: c for c, _, _ in load_cases(root)}
    questions = load_questions(root)
    var_docs = {v["name"]: _fold(v.get("description") or v["name"].replace("_", " ")) for v in pack.variables}
    renderer = PlainRenderer(pack.parameters, var_docs)
    notes = _article_notes(root, policy)
    rules_by_prov: dict[str, list[Any]] = {}
    for rule in policy.rules:
        rules_by_prov.setdefault(rule.provision, []).append(rule)

    doc: list[Block] = []
    doc.append(Heading(1, [T("Legal review: " + meta["title"])], "top"))
    notice = meta.get("review_notice", {})
    unreviewed = [r.id for r in policy.rules if r.review.get("status") != "reviewed"]
    notice_title = "DRAFT — NOT REVIEWED BY A LAWYER" if unreviewed else "All rules are marked reviewed"
    doc.append(Notice(notice_title, [(lang, _fold(notice[lang])) for lang in ("en", "zh") if lang in notice]))
    doc.append(Para([T("Generated by "), C("facegate docs"), T(" from the pack's YAML files. Do not edit it: edit the rules or cases "
                    "and regenerate. A rule is signed off by setting its "), C("review"), T(" block (status, reviewer, date); that changes the "
                    "pack's revision below.")], "meta"))

    doc += _pack_section(policy, meta)
    doc += _status_section(policy, report, unreviewed)
    doc += _legend_section()

    doc.append(Heading(2, [T("Provisions")], "provisions"))
    for prov in pack.provisions:
        asked = [q.id for q in questions if prov.provision in q.provisions]
        doc += _provision_section(prov, notes.get(prov.provision), asked, rules_by_prov.get(prov.provision, []), report, cases, renderer, root)

    doc += _parameters_section(pack.parameters, pack.parameter_docs)
    doc += _variables_section(pack.variables, renderer)
    doc += _questions_section(questions)
    return doc


def _pack_section(policy: Policy, meta: Mapping[str, Any]) -> list[Block]:
    inst = meta.get("instrument", {})
    title = inst.get("title", {})
    rows: list[list[Inline]] = [
        [[T("Pack")], [C(policy.id), T(" version " + policy.version)]],
        [[T("Revision")], [C(policy.revision)]],
        [[T("Instrument")], [T(title.get("zh", ""))] + ([T(" — ")] if "zh" in title else []) + [T(title.get("en", ""))]],
    ]
    for key, label in (("issuer", "Issuer"), ("issued", "Issued"), ("status", "Status")):
        if key in inst:
            rows.append([[T(label)], [T(str(inst[key]))]])
    if "url" in inst:
        rows.append([[T("Official URL")], [L(inst["url"])]])
    rows.append([[T("Jurisdiction")], [T(meta["jurisdiction"])]])
    valid = f"from {meta['valid_from']}" + (f" until {meta['valid_until']}" if meta.get("valid_until") else "")
    rows.append([[T("Pack valid")], [T(valid)]])
    if "legal_basis" in inst:
        rows.append([[T("Legal basis")], _prose(inst["legal_basis"])])
    out: list[Block] = [Heading(2, [T("The pack")], "pack"), Table([[T("")], [T("")]], rows)]
    if inst.get("notes"):
        out.append(Para([B("Notes on the instrument: "), *_prose(inst["notes"])]))
    if meta.get("description"):
        out.append(Para([B("How the pack encodes it: "), *_prose(meta["description"])]))
    return out


def _status_section(policy: Policy, report: Report, unreviewed: list[str]) -> list[Block]:
    provisions = policy.pack.provisions
    enforced = sum(p.enforceable for p in provisions)
    passed = sum(r.passed for r in report.results)
    reviewed = len(policy.rules) - len(unreviewed)
    summary: Inline = [
        T(f"{reviewed} of {len(policy.rules)} rules reviewed. {len(provisions)} provisions: {enforced} enforced per request, "
          f"{len(provisions) - enforced} not enforceable. {len(report.results)} cases, {passed} passing; provision coverage "
          f"{report.coverage_percent:.0f} %."),
    ]
    rows: list[list[Inline]] = []
    cov = {c.provision: c for c in report.coverage}
    for p in provisions:
        rules = [r for r in policy.rules if r.provision == p.provision]
        statuses = sorted({str(r.review.get("status")) for r in rules} or {str(p.review.get("status", "—"))})
        c = cov[p.provision]
        if not p.enforceable:
            covered = "not enforceable"
        else:
            covered = f"{'covered' if c.covered else 'NOT COVERED'} ({len(c.decisive_cases)} decisive, {len(c.boundary_cases)} boundary)"
        rows.append([
            [("link", f"#{_anchor(p.provision)}|{p.provision}")],
            [T(_article(p.article, p.article_verified))],
            [T(str(p.text.get("grade", "—")))],
            [T(str(len(rules)))],
            [T(covered)],
            [T(", ".join(statuses))],
        ])
    out: list[Block] = [Heading(2, [T("Sign-off status")], "status"), Para(summary),
                        Table([[T("Provision")], [T("Article")], [T("Grade")], [T("Rules")], [T("Cases")], [T("Review")]], rows)]
    failing = [r for r in report.results if not r.passed]
    if failing:
        out.append(Para([B("Failing cases: "), T("; ".join(f"{r.id} ({', '.join(r.failures)})" for r in failing))], "warn"))
    return out


def _legend_section() -> list[Block]:
    return [
        Heading(2, [T("How to read this document")], "legend"),
        Para([T("Every request is denied unless a permit rule applies and no forbid rule does. A forbid whose condition cannot "
                "be evaluated (a fact is missing) applies anyway — the pack fails closed — and the case lists it under errors. "
                "Conditions are shown in plain words with the CEL text beneath; “or not stated” means an absent fact counts "
                "against the request.")]),
        Items([[B(k), T(" — " + v)] for k, v in GRADES.items()]),
        Items([[B(k), T(" — " + v.split(" — ", 1)[1])] for k, v in EFFECTS.items()]),
    ]


def _provision_section(prov: Any, article_note: str | None, asked: list[str], rules: list[Any], report: Report, cases: Mapping[str, Any],
                       renderer: PlainRenderer, root: Path) -> list[Block]:
    head = prov.provision + (f" — {prov.title}" if prov.title else "")
    out: list[Block] = [Heading(3, [T(head)], _anchor(prov.provision))]
    text = prov.text
    facts: list[Inline] = [
        [B("Article: "), T(_article(prov.article, prov.article_verified, article_note))],
        [B("Evidence grade: "), T(f"{text.get('grade', '—')} — {GRADES.get(str(text.get('grade')), 'not stated')}")],
    ]
    if text.get("source"):
        facts.append([B("Sources: "), *_prose(str(text["source"]))])
    if prov.enforceable:
        facts.append([B("Enforced per request: "), T(f"yes — {len(rules)} rule{'s' if len(rules) != 1 else ''}")])
    else:
        facts.append([B("Enforced per request: "), T("no — "), *_prose(prov.reason)])
    if prov.review:
        facts.append([B("Provision review: ")] + _review_line(prov.review))
    if asked:
        facts.append([B("Open questions: "), *_join([[("link", f"#{_anchor(q)}|{q}")] for q in asked], ", ")])
    out.append(Items(list(facts)))
    out.append(Bilingual(text.get("zh", "").strip(), _clean(text.get("en", ""))))
    if text.get("note"):
        out.append(Para([B("Note on the text: "), *_prose(str(text["note"]))]))
    for rule in rules:
        out += _rule_section(rule, prov, article_note, renderer, root)
    if prov.enforceable:
        out += _cases_section(prov.provision, rules, report, cases)
    return out


def _rule_section(rule: Any, prov: Any, prov_note: str | None, renderer: PlainRenderer, root: Path) -> list[Block]:
    out: list[Block] = [Heading(4, [T("Rule "), C(rule.id)] + ([T(" — " + rule.title)] if rule.title else []), _anchor("rule-" + rule.id))]
    facts: list[Inline | tuple[Inline, list[Inline]]] = [
        [B("Effect: "), T(EFFECTS[rule.effect]), T(" · "), B("mode: "), T(MODES.get(rule.mode, rule.mode))],
    ]
    note = rule.source["article"].get("note")
    if note in (prov_note, "best estimate", "number unknown"):
        note = None
    if rule.article != prov.article or rule.article_verified != prov.article_verified or note:
        facts.append([B("Article: "), T(_article(rule.article, rule.article_verified, note))])
    when = [renderer.render(c.text) + [T(" — ")] + [C(_fold(c.text))] for c in rule.when]
    facts.append(([B("Applies when" + (" all of:" if len(when) > 1 else ":"))], when))
    if rule.unless:
        unless = [renderer.render(c.text) + [T(" — ")] + [C(_fold(c.text))] for c in rule.unless]
        facts.append(([B("Except when" + (" all of:" if len(unless) > 1 else ":"))], unless))
    facts.append(([B("Message:")], [_prose(rule.message_en), _prose(rule.message_zh)]))
    if rule.obligations:
        obs: list[Inline] = []
        for ob in rule.obligations:
            line: Inline = [C(ob["type"])]
            if "days" in ob:
                line.append(T(f" ({ob['days']} days)"))
            if ob.get("note"):
                line += [T(" — "), *_prose(ob["note"])]
            obs.append(line)
        facts.append(([B("Obligations:")], obs))
    if rule.source.get("notes"):
        facts.append([B("Encoding notes: "), *_prose(rule.source["notes"])])
    facts.append([B("Review: ")] + _review_line(rule.review))
    facts.append([B("Defined in: "), C(_rel(rule.file, root))] + ([T(f", line {rule.line}")] if rule.line else []))
    out.append(Items(facts))
    if rule.text != prov.text and (rule.text.get("zh") or rule.text.get("en")):
        out.append(Para([B("The words this rule encodes:")]))
        out.append(Bilingual(str(rule.text.get("zh", "")).strip(), _clean(str(rule.text.get("en", "")))))
    return out


def _cases_section(provision: str, rules: list[Any], report: Report, cases: Mapping[str, Any]) -> list[Block]:
    forbids = {r.id for r in rules if r.effect == "forbid"}
    cov = next(c for c in report.coverage if c.provision == provision)
    decisive, boundary = set(cov.decisive_cases), set(cov.boundary_cases)
    shown: list[str] = []
    duty_only = 0
    for r in report.results:
        expect = cases[r.id]["expect"]
        decides = bool(forbids & set(expect["determining"]))
        if provision in r.exercises or decides:
            shown.append(r.id)
        elif r.id in decisive:
            duty_only += 1
    out: list[Block] = [Heading(4, [T(f"Cases for {provision}")], _anchor(f"cases-{provision}"))]
    if not shown:
        out.append(Para([T("No case names this provision.")], "warn"))
        return out
    rows: list[list[Inline]] = []
    by_id = {r.id: r for r in report.results}
    for cid in shown:
        case, result = cases[cid], by_id[cid]
        expect = case["expect"]
        outcome: Inline = [B(expect["decision"])]
        if expect["determining"]:
            outcome += [T(" by ")] + _join([[C(x)] for x in expect["determining"]], ", ")
        if expect.get("obligations"):
            outcome += [T("; duties: ")] + _join([[C(x)] for x in expect["obligations"]], ", ")
        if expect["errors"]:
            outcome += [T("; errors: ")] + _join([[C(x)] for x in expect["errors"]], ", ")
        if expect.get("warnings"):
            outcome += [T("; warnings: ")] + _join([[C(x)] for x in expect["warnings"]], ", ")
        role = "decisive" if cid in decisive else ("not decisive (boundary or exception)" if cid in boundary else "—")
        if not result.passed:
            role += " — FAILING"
        rows.append([[C(cid)], _prose(case.get("description", "")), outcome, [T(role)]])
    out.append(Table([[T("Case")], [T("Scenario")], [T("Expected")], [T(f"Role of {provision}")]], rows))
    if duty_only:
        out.append(Para([T(f"Its duties also attach in {duty_only} further case{'s' if duty_only != 1 else ''} listed under other provisions.")]))
    return out


def _parameters_section(values: Mapping[str, Any], docs: Mapping[str, Mapping[str, Any]]) -> list[Block]:
    if not values:
        return []
    rows: list[list[Inline]] = []
    for name in values:
        spec = docs[name]
        ref = spec["reference"]
        ref_line: Inline = [B(ref["provision"])]
        if ref.get("article"):
            ref_line.append(T(" Art. " + ref["article"]))
        if ref.get("text"):
            ref_line.append(T(" — " + _fold(ref["text"])))
        rows.append([[C(name)], [T(_value(values[name]))], _prose(spec["description"]), ref_line])
    return [Heading(2, [T("Parameters")], "parameters"),
            Table([[T("Parameter")], [T("Value")], [T("Meaning")], [T("Legal reference")]], rows)]


def _variables_section(variables: Iterable[Mapping[str, Any]], renderer: PlainRenderer) -> list[Block]:
    items: list[Inline | tuple[Inline, list[Inline]]] = []
    for v in variables:
        head: Inline = [C(v["name"])]
        if v.get("description"):
            head += [T(" — "), *_prose(v["description"])]
        items.append((head, [[T("in words: ")] + renderer.render(v["expression"]), [C(_fold(v["expression"]))]]))
    if not items:
        return []
    return [Heading(2, [T("Variables")], "variables"),
            Para([T("Named conditions the rules reuse; a rule's plain-words condition spells them out.")]), Items(items)]


def _questions_section(questions: list[Question]) -> list[Block]:
    if not questions:
        return []
    rows: list[list[Inline]] = []
    for q in questions:
        text: Inline = [T(q.en)]
        if q.zh:
            text += [T(" / " + q.zh)]
        rows.append([[("anchor", _anchor(q.id)), B(q.id)], [T(q.origin or "—")], _join([[("link", f"#{_anchor(p)}|{p}")] for p in q.provisions], ", "), text])
    return [Heading(2, [T("Open questions")], "questions"),
            Para([T("“source”: listed by the research the pack is built on; “encoding”: a choice made while encoding that a "
                    "lawyer should confirm or overturn.")]),
            Table([[T("")], [T("Origin")], [T("Provisions")], [T("Question")]], rows)]


# ------------------------------------------------------------------------------------------------
# Markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _md_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_inline(spans: Inline) -> str:
    out = []
    for kind, text in spans:
        if kind == "anchor":
            out.append(f'<a id="{text}"></a>')
        elif kind == "code":
            out.append(f"`{text}`")
        elif kind == "bold":
            core = text.rstrip()
            out.append(f"**{_md_text(core)}**{text[len(core):]}")
        elif kind == "link":
            target, _, label = text.partition("|")
            out.append(f"[{_md_text(label)}]({target})" if label else f"<{target}>")
        else:
            out.append(_md_text(text))
    return "".join(out)


def _md_quote(text: str) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n\n"):
        if lines:
            lines.append(">")
        lines.append("> " + _md_text(para.strip()))
    return lines


def to_markdown(doc: Sequence[Block]) -> str:
    out: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            if block.level > 1:
                out.append(f'<a id="{block.anchor}"></a>')
                out.append("")
            out += ["#" * block.level + " " + _md_inline(block.content), ""]
        elif isinstance(block, Notice):
            out.append(f"> **{_md_text(block.title)}**")
            for _, text in block.paragraphs:
                out += [">", "> " + _md_text(text)]
            out.append("")
        elif isinstance(block, Para):
            out += [_md_inline(block.content), ""]
        elif isinstance(block, Bilingual):
            if block.zh:
                out += ["中文（原文）:", ""] + _md_quote(block.zh) + [""]
            if block.en:
                out += ["English (rendering):", ""] + _md_quote(block.en) + [""]
        elif isinstance(block, Table):
            out.append("| " + " | ".join(_md_inline(h) for h in block.header) + " |")
            out.append("|" + "---|" * len(block.header))
            for row in block.rows:
                out.append("| " + " | ".join(_md_inline(c) for c in row) + " |")
            out.append("")
        elif isinstance(block, Items):
            for i, item in enumerate(block.items, 1):
                bullet = f"{i}." if block.ordered else "-"
                if isinstance(item, tuple):
                    head, subs = item
                    out.append(f"{bullet} {_md_inline(head)}")
                    out += [f"  - {_md_inline(s)}" for s in subs]
                else:
                    out.append(f"{bullet} {_md_inline(item)}")
            out.append("")
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font: 16px/1.55 -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC", sans-serif;
       max-width: 72rem; margin: 2rem auto; padding: 0 1.25rem; color: #1a1a1a; background: #fff; }
h1 { font-size: 1.7rem; margin-bottom: .5rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { font-size: 1.2rem; background: #f3f5f8; padding: .4rem .6rem; margin-top: 2.2rem; border-left: 4px solid #4a6fa5; }
h4 { font-size: 1.02rem; margin: 1.4rem 0 .4rem; }
code { font: .88em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; background: #f4f4f4;
       padding: .05em .3em; border-radius: 3px; word-break: break-word; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .93rem; }
th, td { border: 1px solid #d9d9d9; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f7f7f7; }
ul, ol { padding-left: 1.4rem; } li { margin: .2rem 0; }
.notice { border: 3px solid #b00020; background: #fff4f4; padding: .8rem 1rem; margin: 1rem 0 1.5rem; }
.notice strong.title { display: block; color: #b00020; font-size: 1.15rem; margin-bottom: .4rem; }
.notice p { margin: .4rem 0; }
.law { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; margin: .6rem 0 1rem; }
.law > div { border: 1px solid #e0e0e0; background: #fafafa; padding: .5rem .8rem; }
.law .label { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em; color: #666; }
.law [lang="zh"] { font-size: 1.04rem; line-height: 1.8; }
p.meta { color: #555; font-size: .92rem; }
p.warn { color: #b00020; font-weight: 600; }
nav.toc { font-size: .92rem; columns: 2; }
@media (max-width: 52rem) { .law { grid-template-columns: 1fr; } nav.toc { columns: 1; } }
@media print { body { max-width: none; } h3 { break-before: auto; } }
""".strip()


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_inline(spans: Inline) -> str:
    out = []
    for kind, text in spans:
        if kind == "anchor":
            out.append(f'<a id="{_esc(text)}"></a>')
        elif kind == "code":
            out.append(f"<code>{_esc(text)}</code>")
        elif kind == "bold":
            out.append(f"<strong>{_esc(text)}</strong>")
        elif kind == "link":
            target, _, label = text.partition("|")
            if not (target.startswith(("http://", "https://", "#"))):
                out.append(_esc(label or target))
            else:
                out.append(f'<a href="{_esc(target)}">{_esc(label or target)}</a>')
        else:
            out.append(_esc(text))
    return "".join(out)


def _html_paras(text: str) -> str:
    return "".join(f"<p>{_esc(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def to_html(doc: Sequence[Block], title: str) -> str:
    body: list[str] = []
    toc = [b for b in doc if isinstance(b, Heading) and b.level in (2, 3)]
    for block in doc:
        if isinstance(block, Heading):
            body.append(f'<h{block.level} id="{_esc(block.anchor)}">{_html_inline(block.content)}</h{block.level}>')
        elif isinstance(block, Notice):
            paras = "".join(f'<p lang="{_esc(lang)}">{_esc(text)}</p>' for lang, text in block.paragraphs)
            body.append(f'<div class="notice" role="note"><strong class="title">{_esc(block.title)}</strong>{paras}</div>')
            body.append('<nav class="toc"><ul>' + "".join(
                f'<li><a href="#{_esc(h.anchor)}">{_html_inline(h.content)}</a></li>' for h in toc if h.level == 2) + "</ul></nav>")
        elif isinstance(block, Para):
            cls = f' class="{_esc(block.css)}"' if block.css else ""
            body.append(f"<p{cls}>{_html_inline(block.content)}</p>")
        elif isinstance(block, Bilingual):
            cols = []
            if block.zh:
                cols.append(f'<div lang="zh"><div class="label">中文（原文）</div>{_html_paras(block.zh)}</div>')
            if block.en:
                cols.append(f'<div lang="en"><div class="label">English (rendering)</div>{_html_paras(block.en)}</div>')
            body.append('<div class="law">' + "".join(cols) + "</div>")
        elif isinstance(block, Table):
            cells = "".join(f"<th>{_html_inline(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            thead = f"<thead><tr>{cells}</tr></thead>" if any(h and h[0][1] for h in block.header) else ""
            body.append(f"<table>{thead}<tbody>{rows}</tbody></table>")
        elif isinstance(block, Items):
            tag = "ol" if block.ordered else "ul"
            lis = []
            for item in block.items:
                if isinstance(item, tuple):
                    head, subs = item
                    lis.append(f"<li>{_html_inline(head)}<ul>" + "".join(f"<li>{_html_inline(s)}</li>" for s in subs) + "</ul></li>")
                else:
                    lis.append(f"<li>{_html_inline(item)}</li>")
            body.append(f"<{tag}>" + "".join(lis) + f"</{tag}>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# ------------------------------------------------------------------------------------------------
# entry point


def render(policy: Policy) -> tuple[str, str]:
    """The review document as (Markdown, HTML) text."""
    doc = build(policy)
    return to_markdown(doc), to_html(doc, "Legal review: " + policy.pack.meta["title"])


def write_review(policy: Policy, out_dir: Path | None = None) -> list[Path]:
    """Write ``REVIEW.md`` and ``REVIEW.html`` into ``out_dir`` (default: the pack's own folder)."""
    root = policy.pack.root if policy.pack.root.is_dir() else policy.pack.root.parent
    target = out_dir if out_dir is not None else root
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolicyError([Problem(str(target), None, None, "", f"cannot create output folder: {exc.strerror or exc}")]) from exc
    markdown, page = render(policy)
    written = []
    for name, text in (("REVIEW.md", markdown), ("REVIEW.html", page)):
        path = target / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written
