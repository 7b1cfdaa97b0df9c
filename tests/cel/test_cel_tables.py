"""The CEL grammar's shipped LALR tables (facegate.cel._tables) parse exactly as freshly built ones."""

from __future__ import annotations

from pathlib import Path

import cel_conformance
import lark
import pytest
import yaml

from facegate.cel import _parse, _tables

ROOT = Path(__file__).resolve().parents[2]

MALFORMED = ["", "a &&", "(1 + 2", "a.`b c`", "1 +* 2", "[1, 2", "{1: }", "a ? b", "'unterminated", "a.b(", "x in", "!"]


def _corpus() -> list[str]:
    texts = [case.expr for case in cel_conformance.load_cases()]
    for path in sorted((ROOT / "policies").rglob("*.yaml")):
        texts += _strings(yaml.safe_load(path.read_text(encoding="utf-8")))
    return texts + MALFORMED


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _parse_with(parser: lark.Lark, text: str) -> object:
    try:
        return parser.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        return ("error", type(exc).__name__, exc.line, exc.column)
    except lark.exceptions.LarkError as exc:
        return ("error", type(exc).__name__)
    except RecursionError:  # a few conformance expressions nest deeper than lark can follow
        return ("too deep",)


def _same(a: object, b: object) -> bool:
    """Trees equal node by node, positions included (iterative: some trees are very deep)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, lark.Tree) and isinstance(y, lark.Tree):
            if x.data != y.data or len(x.children) != len(y.children) or x.meta.empty != y.meta.empty:
                return False
            if not x.meta.empty and (x.meta.line, x.meta.column, x.meta.end_line, x.meta.end_column) != (
                    y.meta.line, y.meta.column, y.meta.end_line, y.meta.end_column):
                return False
            stack.extend(zip(x.children, y.children))
        elif isinstance(x, lark.Token) and isinstance(y, lark.Token):
            if (x.type, x.value, x.line, x.column) != (y.type, y.value, y.line, y.column):
                return False
        elif type(x) is not type(y) or isinstance(x, lark.Tree) or x != y:
            return False
    return True


def test_the_shipped_tables_are_for_this_grammar_and_lark() -> None:
    grammar = _parse.grammar_text()
    if _tables.load(grammar, {"IDENT": _parse._ambiguous_literals}) is None:
        pytest.fail('the shipped CEL parse tables are stale: .venv/bin/python -c "from facegate.cel import _tables; _tables.write()"')


def test_the_shipped_parser_parses_as_the_built_one() -> None:
    grammar = _parse.grammar_text()
    callbacks = {"IDENT": _parse._ambiguous_literals}
    shipped = _tables.load(grammar, callbacks)
    assert shipped is not None
    built = _tables.build(grammar, callbacks)
    corpus = _corpus()
    assert len(corpus) > 1500  # the conformance suite and the packs were found
    differ = [t for t in corpus if not _same(_parse_with(shipped, t), _parse_with(built, t))]
    assert differ == []
    # the corpus is not all errors or all one shape: real trees are compared, positions included
    trees = [_parse_with(built, t) for t in corpus]
    assert sum(isinstance(t, lark.Tree) for t in trees) > 1000
    assert sum(isinstance(t, tuple) for t in trees) >= len(MALFORMED)


def test_tables_for_another_grammar_are_not_used() -> None:
    grammar = _parse.grammar_text() + "\n// changed\n"
    assert _tables.load(grammar, {"IDENT": _parse._ambiguous_literals}) is None


def test_the_parser_in_use_came_from_the_shipped_tables() -> None:
    assert _parse._lark().source_path == "<deserialized>"
