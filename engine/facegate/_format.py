"""``facegate fmt``: pack and case files in one canonical layout, comments kept.

Round-trips through ruamel.yaml (which keeps comments, quoting and flow style): indentation
becomes two spaces with list dashes indented under their key, and the keys of a document, a
rule, a provision and a case follow the order the reference documents them in.  Values are never
changed: the result is re-read and compared with the original, and a file that would read
differently is left alone with an error.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from ._yaml import load_yaml_text
from .errors import FacegateError, Problem

DOCUMENT = ("format", "pack", "languages", "evidence_grades", "operations", "facts", "governs")  # the rest keep their order
PACK = ("id", "title", "jurisdiction", "instrument", "version", "valid_from", "valid_until", "review_notice", "description")
RULE = ("id", "provision", "article", "title", "text", "effect", "mode", "when", "unless", "message", "obligations",
        "valid_from", "valid_until", "review", "notes")
PROVISION = ("provision", "article", "title", "text", "enforceable", "reason", "review")
CASE = ("id", "description", "exercises", "at", "request", "expect")
VARIABLE = ("name", "description", "expression")


class FormatError(FacegateError):
    """A file cannot be formatted (it does not load, or formatting would change its meaning)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self.problems[0]) if self.problems else "cannot format")


def _order(mapping: Any, keys: Sequence[str]) -> None:
    """Move ``keys`` (those present) to the front in this order; the rest keep theirs after them."""
    present = [k for k in keys if k in mapping]
    rest = [k for k in list(mapping) if k not in keys]
    for k in present + rest:
        mapping.move_to_end(k)


def _canonical(data: Any) -> None:
    if not hasattr(data, "move_to_end"):
        return
    _order(data, DOCUMENT)
    if hasattr(data.get("pack"), "move_to_end"):
        _order(data["pack"], PACK)
    for key, keys in (("rules", RULE), ("provisions", PROVISION), ("cases", CASE), ("variables", VARIABLE)):
        for item in data.get(key) or ():
            if hasattr(item, "move_to_end"):
                _order(item, keys)


def format_text(text: str, name: str) -> str:
    """``text`` in the canonical layout; raises :class:`FormatError` rather than change a value."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    original, problems = load_yaml_text(text, name)  # the hardened reader first: no bombs reach ruamel
    if original is None:
        raise FormatError(problems)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a lawyer's prose
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        data = yaml.load(text)
        _canonical(data)
        out = io.StringIO()
        yaml.dump(data, out)
    except YAMLError as exc:
        raise FormatError([Problem(name, None, None, "", f"cannot format: {exc}")]) from exc
    result = out.getvalue()
    again, problems = load_yaml_text(result, name)
    if again is None or again.data != original.data:
        raise FormatError([Problem(name, None, None, "", "formatting would change what the file says; left as it is (please report this)")])
    return result
