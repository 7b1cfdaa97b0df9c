"""Parse phase: CEL text -> cel-python's lark tree -> the compact tree of :mod:`._ast`.

The grammar is cel-python's own ``cel.lark`` with one documented addition -- CEL's
backtick-quoted field names (``m.`content-type```), which cel-python 0.5.0 lacks -- so
every tree cel-python can parse has exactly the shape cel-python produces, and the
interpreter backend can evaluate it.  String and bytes literals are decoded here, by
the CEL escape rules, not by cel-python.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from typing import Any, Final, TypeAlias

import lark
from lark.exceptions import LarkError, UnexpectedInput

from . import _ast as ast
from . import _tables
from ._errors import CELCheckError, CELSyntaxError
from ._values import INT64_MAX, INT64_MIN, UINT64_MAX, UInt

LTree: TypeAlias = "lark.Tree[lark.Token]"

_GRAMMAR_PATCHES: Final = (
    ('member_dot     : member "." IDENT', 'member_dot     : member "." (IDENT | QUOTED_IDENT)'),
    ("IDENT          :", "QUOTED_IDENT   : /`[_a-zA-Z0-9.\\-\\/ ]+`/\n\nIDENT          :"),
)

RESERVED: Final = frozenset(
    [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
        "in",
    ]
)

_MACROS: Final = {
    # name: {argument count: (kind, number of variables, has filter)}
    "all": {2: ("all", 1, False), 3: ("all", 2, False)},
    "exists": {2: ("exists", 1, False), 3: ("exists", 2, False)},
    "exists_one": {2: ("exists_one", 1, False), 3: ("exists_one", 2, False)},
    "existsOne": {2: ("exists_one", 1, False), 3: ("exists_one", 2, False)},
    "map": {2: ("map", 1, False), 3: ("map", 1, True)},
    "filter": {2: ("filter", 1, False)},
    "transformList": {3: ("transformList", 2, False), 4: ("transformList", 2, True)},
    "transformMap": {3: ("transformMap", 2, False), 4: ("transformMap", 2, True)},
}

_parser: lark.Lark | None = None
_parser_lock = threading.Lock()


def _lark() -> lark.Lark:
    global _parser
    if _parser is None:
        with _parser_lock:
            if _parser is None:
                grammar = grammar_text()
                callbacks = {"IDENT": _ambiguous_literals}
                _parser = _tables.load(grammar, callbacks) or _tables.build(grammar, callbacks)
    return _parser


def grammar_text() -> str:
    """cel-python's grammar with facegate's patches applied."""
    grammar = _grammar_path().read_text()
    for old, new in _GRAMMAR_PATCHES:
        if old not in grammar:  # pragma: no cover - guards a cel-python upgrade
            raise RuntimeError(f"cel-python grammar changed: `{old}` not found")
        grammar = grammar.replace(old, new, 1)
    return grammar


def _grammar_path() -> Path:
    """cel-python's grammar file, found without importing cel-python (its import is slow and
    only the interpreter backend needs it)."""
    spec = importlib.util.find_spec("celpy")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - a dependency
        raise RuntimeError("cel-python (`celpy`) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "cel.lark"


def _ambiguous_literals(t: lark.Token) -> lark.Token:
    """``true``/``false`` lex as identifiers; make them literals (cel-python's own
    ``CELParser.ambiguous_literals``, the same three lines)."""
    if t.value in ("true", "false"):
        return lark.Token("BOOL_LIT", t.value)
    return t


def parse_tree(text: str) -> LTree:
    """The lark tree of ``text`` (cel-python's shape); :class:`CELSyntaxError` if invalid."""
    try:
        return _lark().parse(text)
    except UnexpectedInput as exc:
        line, column = max(exc.line, 1), max(exc.column, 1)
        found = text.splitlines()[line - 1][column - 1 : column + 9] if text else ""
        raise CELSyntaxError(f"unexpected input at `{found.strip() or '<end>'}`", line, column) from exc
    except LarkError as exc:  # pragma: no cover - lark reports most errors as UnexpectedInput
        raise CELSyntaxError(f"syntax error: {str(exc).splitlines()[0].lower()}") from exc


def parse(text: str, max_depth: int) -> ast.Node:
    """Parse ``text`` into the compact tree, refusing nesting deeper than ``max_depth``."""
    return _Converter(max_depth).node(parse_tree(text), 1)


_PASSTHROUGH: Final = frozenset(
    [
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
        "member",
        "primary",
        "paren_expr",
    ]
)
_BINARY: Final = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_in": "in",
    "addition_add": "+",
    "addition_sub": "-",
    "multiplication_mul": "*",
    "multiplication_div": "/",
    "multiplication_mod": "%",
}


def _pos(item: LTree | lark.Token) -> tuple[int, int]:
    if isinstance(item, lark.Token):
        return item.line or 1, item.column or 1
    meta = item.meta
    return (getattr(meta, "line", 1) or 1), (getattr(meta, "column", 1) or 1)


class _Converter:
    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    def node(self, tree: LTree, depth: int) -> ast.Node:
        if depth > self.max_depth:
            line, column = _pos(tree)
            raise CELCheckError(f"expression nesting exceeds the limit of `{self.max_depth}`", line, column)
        # Descend single-child grammar levels in a loop: ten per operator, no recursion.
        while True:
            data, children = tree.data, tree.children
            if data in _PASSTHROUGH and len(children) == 1 and isinstance(children[0], lark.Tree):
                tree = children[0]
                continue
            break
        line, column = _pos(tree)
        handler = getattr(self, "_" + str(data), None)
        if data in ("conditionalor", "conditionaland"):
            return self._logic(tree, depth)
        if data in ("relation", "addition", "multiplication"):
            op_tree, right = children
            assert isinstance(op_tree, lark.Tree) and isinstance(right, lark.Tree)
            left = op_tree.children[0]
            assert isinstance(left, lark.Tree)
            return ast.Binary(
                _BINARY[str(op_tree.data)],
                self.node(left, depth + 1),
                self.node(right, depth + 1),
                line,
                column,
            )
        if handler is None:  # pragma: no cover - every grammar rule is handled
            raise CELSyntaxError(f"unsupported construct `{data}`", line, column)
        result: ast.Node = handler(tree, depth)
        return result

    def _logic(self, tree: LTree, depth: int) -> ast.Node:
        # Left-recursive chains (a || b || c) flatten into one n-ary node.
        data = tree.data
        operands: list[ast.Node] = []
        while tree.data == data and len(tree.children) == 2:
            left, right = tree.children
            assert isinstance(left, lark.Tree) and isinstance(right, lark.Tree)
            operands.append(self.node(right, depth + 1))
            tree = left
        operands.append(self.node(tree, depth + 1))
        operands.reverse()
        line, column = _pos(tree)
        return ast.Logic("||" if data == "conditionalor" else "&&", tuple(operands), line, column)

    def _expr(self, tree: LTree, depth: int) -> ast.Node:
        cond, then, otherwise = tree.children
        assert (
            isinstance(cond, lark.Tree) and isinstance(then, lark.Tree) and isinstance(otherwise, lark.Tree)
        )
        line, column = _pos(tree)
        return ast.Cond(
            self.node(cond, depth + 1),
            self.node(then, depth + 1),
            self.node(otherwise, depth + 1),
            line,
            column,
        )

    def _unary(self, tree: LTree, depth: int) -> ast.Node:
        op_tree, operand = tree.children
        assert isinstance(op_tree, lark.Tree) and isinstance(operand, lark.Tree)
        line, column = _pos(tree)
        op = "!" if op_tree.data == "unary_not" else "-"
        return ast.Unary(op, self.node(operand, depth + 1), line, column)

    def _member_dot(self, tree: LTree, depth: int) -> ast.Node:
        operand, name = tree.children
        assert isinstance(operand, lark.Tree) and isinstance(name, lark.Token)
        line, column = _pos(name)
        return ast.Select(self.node(operand, depth + 1), _field_name(name), line, column)

    def _member_dot_arg(self, tree: LTree, depth: int) -> ast.Node:
        target, name = tree.children[:2]
        assert isinstance(target, lark.Tree) and isinstance(name, lark.Token)
        arg_trees = self._exprlist(tree.children[2]) if len(tree.children) == 3 else []
        line, column = _pos(name)
        macro = _MACROS.get(str(name), {}).get(len(arg_trees))
        if macro is not None:
            return self._comprehension(macro, target, arg_trees, str(name), depth, line, column)
        args = tuple(self.node(a, depth + 1) for a in arg_trees)
        return ast.Call(str(name), self.node(target, depth + 1), args, line, column)

    def _comprehension(
        self,
        macro: tuple[str, int, bool],
        target: LTree,
        arg_trees: list[LTree],
        name: str,
        depth: int,
        line: int,
        column: int,
    ) -> ast.Node:
        kind, variables, has_filter = macro
        names: list[str] = []
        for arg in arg_trees[:variables]:
            simple = self.node(arg, depth + 1)
            if not isinstance(simple, ast.Ident):
                raise CELSyntaxError(
                    f"argument of `{name}` must be a simple name", simple.line, simple.column
                )
            names.append(simple.name)
        rest = [self.node(a, depth + 1) for a in arg_trees[variables:]]
        filter_node = rest[0] if has_filter else None
        return ast.Comprehension(
            kind,
            self.node(target, depth + 1),
            names[0],
            names[1] if variables == 2 else None,
            rest[-1],
            filter_node,
            line,
            column,
        )

    def _member_index(self, tree: LTree, depth: int) -> ast.Node:
        operand, index = tree.children
        assert isinstance(operand, lark.Tree) and isinstance(index, lark.Tree)
        line, column = _pos(tree)
        return ast.Index(self.node(operand, depth + 1), self.node(index, depth + 1), line, column)

    def _member_object(self, tree: LTree, depth: int) -> ast.Node:
        line, column = _pos(tree)
        raise CELCheckError("message construction is not supported (no protobuf types)", line, column)

    def _literal(self, tree: LTree, depth: int) -> ast.Node:
        token = tree.children[0]
        assert isinstance(token, lark.Token)
        line, column = _pos(token)
        return _literal(token, line, column)

    def _ident(self, tree: LTree, depth: int) -> ast.Node:
        token = tree.children[0]
        assert isinstance(token, lark.Token)
        line, column = _pos(token)
        if str(token) in RESERVED:
            raise CELSyntaxError(f"reserved identifier `{token}`", line, column)
        return ast.Ident(str(token), line, column)

    _dot_ident = _ident

    def _ident_arg(self, tree: LTree, depth: int) -> ast.Node:
        name = tree.children[0]
        assert isinstance(name, lark.Token)
        line, column = _pos(name)
        if str(name) in RESERVED:
            raise CELSyntaxError(f"reserved identifier `{name}`", line, column)
        arg_trees = self._exprlist(tree.children[1]) if len(tree.children) == 2 else []
        args = tuple(self.node(a, depth + 1) for a in arg_trees)
        if str(name) == "has":
            if len(args) != 1 or not isinstance(args[0], ast.Select):
                raise CELSyntaxError(
                    "invalid argument to `has()`: expected a field selection like `a.b`", line, column
                )
            selected = args[0]
            return ast.Has(selected.operand, selected.field, selected.line, selected.column)
        return ast.Call(str(name), None, args, line, column)

    _dot_ident_arg = _ident_arg

    def _list_lit(self, tree: LTree, depth: int) -> ast.Node:
        line, column = _pos(tree)
        items = self._exprlist(tree.children[0]) if tree.children else []
        return ast.ListLit(tuple(self.node(i, depth + 1) for i in items), line, column)

    def _map_lit(self, tree: LTree, depth: int) -> ast.Node:
        line, column = _pos(tree)
        flat: list[Any] = list(tree.children[0].children) if tree.children else []  # type: ignore[union-attr]
        entries = tuple(
            (self.node(flat[i], depth + 1), self.node(flat[i + 1], depth + 1)) for i in range(0, len(flat), 2)
        )
        return ast.MapLit(entries, line, column)

    @staticmethod
    def _exprlist(tree: LTree | lark.Token) -> list[LTree]:
        assert isinstance(tree, lark.Tree) and tree.data == "exprlist"
        return [c for c in tree.children if isinstance(c, lark.Tree)]


def _field_name(token: lark.Token) -> str:
    text = str(token)
    return text[1:-1] if token.type == "QUOTED_IDENT" else text


def _literal(token: lark.Token, line: int, column: int) -> ast.Node:
    kind, text = token.type, str(token)
    if kind == "INT_LIT":
        value = _int_text(text)
        if not INT64_MIN <= value <= INT64_MAX:
            raise CELSyntaxError(f"int literal out of range: `{text}`", line, column)
        return ast.Lit(value, line, column)
    if kind == "UINT_LIT":
        value = _int_text(text[:-1])
        if abs(value) > UINT64_MAX:
            raise CELSyntaxError(f"uint literal out of range: `{text}`", line, column)
        if text.startswith("-"):  # the grammar folds the sign in; CEL reads `-(1u)`
            return ast.Unary("-", ast.Lit(UInt(-value), line, column + 1), line, column)
        return ast.Lit(UInt(value), line, column)
    if kind == "FLOAT_LIT":
        return ast.Lit(float(text), line, column)
    if kind == "BOOL_LIT":
        return ast.Lit(text == "true", line, column)
    if kind == "NULL_LIT":
        return ast.Lit(None, line, column)
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return ast.Lit(decode_string(text, line, column), line, column)
    if kind == "BYTES_LIT":
        return ast.Lit(decode_bytes(text, line, column), line, column)
    raise CELSyntaxError(f"unsupported literal `{text}`", line, column)  # pragma: no cover


def _int_text(text: str) -> int:
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
    return -value if negative else value


_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
}
_ESCAPE: Final = re.compile(
    r"\\(?:([abfnrtv\\?\"'`])|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-3][0-7]{2})|(.|\n|$))"
)


def _body(text: str) -> tuple[str, bool]:
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    return text[quote:-quote], raw


def _unescape(body: str, line: int, column: int, as_bytes: bool) -> list[int | str]:
    """Split ``body`` into characters (str) and, for bytes, raw byte values (int)."""
    parts: list[int | str] = []
    pos = 0
    for m in _ESCAPE.finditer(body):
        parts.extend(body[pos : m.start()])
        pos = m.end()
        simple, hex2, hex4, hex8, octal, bad = m.groups()
        if simple is not None:
            parts.append(_SIMPLE_ESCAPES[simple])
        elif hex2 is not None or octal is not None:
            value = int(hex2, 16) if hex2 is not None else int(octal, 8)
            parts.append(value if as_bytes else chr(value))
        else:
            if bad is not None or as_bytes and (hex4 or hex8):
                raise CELSyntaxError(f"invalid escape sequence `{m.group()}`", line, column)
            code = int(hex4 or hex8, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise CELSyntaxError(f"invalid unicode escape `{m.group()}`", line, column)
            parts.append(chr(code))
    parts.extend(body[pos:])
    return parts


def decode_string(text: str, line: int = 1, column: int = 1) -> str:
    """A CEL string literal (with its quotes and optional ``r`` prefix) to its value."""
    body, raw = _body(text)
    if raw:
        return body
    return "".join(p if isinstance(p, str) else chr(p) for p in _unescape(body, line, column, False))


def decode_bytes(text: str, line: int = 1, column: int = 1) -> bytes:
    """A CEL bytes literal (``b"..."``, ``br'...'``...) to its value."""
    body, raw = _body(text[1:])
    if raw:
        return body.encode("utf-8")
    out = bytearray()
    for part in _unescape(body, line, column, True):
        if isinstance(part, int):
            out.append(part)
        else:
            out += part.encode("utf-8")
    return bytes(out)
