"""Diagnostics that teach: plain words, a likely fix, and "did you mean" for what a pack author wrote.

Used by the load phase (:mod:`._pack`, :mod:`._yaml`) to turn a correct but terse message from
the YAML parser or the CEL checker into one a legal team can act on.  Nothing here decides.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

_UNDEFINED_FIELD = re.compile(r"^undefined field `([^`]+)` in `([^`]+)`")
_UNDECLARED = re.compile(r"^undeclared reference to `([^`]+)`")
_UNEXPECTED_WORD = re.compile(r"^unexpected input at `(and|or|not|AND|OR|NOT)\b")
_CEL_WORDS = {"and": "&&", "or": "||", "not": "!"}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean `x`?"`` for the closest choice, or ``""``."""
    near = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean `{near[0]}`?" if near else ""


def _fields_at(schema: Mapping[str, Any], dotted: str) -> list[str]:
    node: Any = schema
    for part in dotted.split("."):
        props = node.get("properties", {}) if isinstance(node, Mapping) else {}
        node = props.get(part)
        if node is None:
            return []
    return sorted(node.get("properties", {})) if isinstance(node, Mapping) else []


def cel_hint(message: str, activation: Mapping[str, Any], variables: Iterable[str] = ()) -> str:
    """The CEL checker's ``message`` with a suggestion, checked against the activation schema."""
    m = _UNDEFINED_FIELD.match(message)
    if m:
        field, where = m.groups()
        known = _fields_at(activation, where)
        tip = did_you_mean(field, known)
        if not tip and known and where.startswith("request"):
            tip = f"; `{where}` has: {', '.join(known)}" if len(known) <= 12 else "; the pack does not declare it (add it under `facts:`)"
        return message + tip
    m = _UNDECLARED.match(message)
    if m:
        roots = [*activation.get("properties", {}), "variables"]
        return message + (did_you_mean(m.group(1), roots) or "; conditions read `request`, `params` and `variables`")
    m = _UNEXPECTED_WORD.match(message)
    if m:
        word = m.group(1).lower()
        return message + f"; CEL writes `{_CEL_WORDS[word]}` for `{word}`"
    return message


# -- YAML ----------------------------------------------------------------------------------------

_YAML_HINTS: tuple[tuple[str, str], ...] = (
    ("found character '\\t'", "a tab is used for indentation; YAML indents with spaces only"),
    ("found character that cannot start any token", "a character that cannot start a value; quote the value (\"...\")"),
    ("mapping values are not allowed here", "a `:` where none can be: check the indentation of this line, "
     "or quote a value that contains `: `"),
    ("did not find expected key", "the indentation of this line does not match the lines above it"),
    ("expected <block end>", "the indentation of this line does not match the lines above it"),
    ("did not find expected ',' or ']'", "a list opened with `[` is not closed with `]` (or a comma is missing)"),
    ("did not find expected ',' or '}'", "a mapping opened with `{` is not closed with `}` (or a comma is missing)"),
    ("expected ',' or ']'", "a list opened with `[` is not closed with `]` (or a comma is missing)"),
    ("expected ',' or '}'", "a mapping opened with `{` is not closed with `}` (or a comma is missing)"),
    ("found unexpected end of stream", "a quote or bracket is opened and never closed"),
    ("found undefined alias", "`*name` refers to an anchor `&name` that is not defined; quote a value starting with `*`"),
    ("found unknown escape character", "a backslash in a double-quoted string; use single quotes or write `\\\\`"),
    ("while scanning a quoted scalar", "a quote is opened and never closed"),
)


def yaml_hint(message: str) -> str:
    """Plain words for a PyYAML syntax error."""
    for needle, hint in _YAML_HINTS:
        if needle in message:
            return f"yaml syntax: {hint} ({message})"
    return f"malformed yaml: {message}"


# -- lint: has() without a guard -----------------------------------------------------------------

_HAS = re.compile(r"\bhas\(\s*(request(?:\.[A-Za-z_][A-Za-z0-9_]*){2,})\s*\)")


def unguarded_has(text: str, schema: Mapping[str, Any], start: int = 0) -> list[str]:
    """``has(request.a.b)`` where ``request.a`` is optional and no ``has(request.a)`` comes first.

    CEL's ``has(a.b.c)`` tests only ``c``: when ``a.b`` is absent it is an *error*, not ``false``
    (a forbid then applies, a permit does not).  Each guard must come before, at each level.
    Only calls at or after ``start`` are reported; the text before it may hold guards.
    """
    out: list[str] = []
    for m in _HAS.finditer(text, start):
        parts = m.group(1).split(".")
        before = text[: m.start()]
        for i in range(2, len(parts)):
            prefix = ".".join(parts[:i])
            if _required(schema, parts[:i]):
                continue
            if not re.search(r"\bhas\(\s*" + re.escape(prefix) + r"\s*\)", before):
                out.append(f"`has({m.group(1)})` is an error, not false, when `{prefix}` is absent; "
                           f"guard it first: `has({prefix}) && has({m.group(1)})`")
                break
    return out


def _required(schema: Mapping[str, Any], parts: list[str]) -> bool:
    """Whether the field ``parts`` (``request``, ``a``, …) is always present."""
    node: Any = schema
    for part in parts:
        if not isinstance(node, Mapping) or part not in node.get("required", ()) and part != "request":
            return False
        node = node.get("properties", {}).get(part)
    return True
