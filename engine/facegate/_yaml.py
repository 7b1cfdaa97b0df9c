"""Safe YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` loses positions and silently keeps the last of two duplicate keys;
both are unacceptable for a lawyer-edited file.  Here every value's JSON pointer maps to its
(line, column), duplicate keys are errors, and only plain data types are constructed.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import Problem

_SCALAR = yaml.constructor.SafeConstructor()
_PLAIN_TAGS = frozenset(
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)


@dataclass(frozen=True, slots=True)
class YamlDocument:
    path: str
    data: Any
    positions: dict[str, tuple[int, int]]  # JSON pointer -> (line, column), 1-based

    def locate(self, pointer: str) -> tuple[int | None, int | None]:
        """Position of ``pointer`` or of its nearest located ancestor."""
        p = pointer
        while True:
            if p in self.positions:
                return self.positions[p]
            if not p:
                return (None, None)
            p = p.rsplit("/", 1)[0]

    def problem(self, pointer: str, message: str) -> Problem:
        line, col = self.locate(pointer)
        return Problem(self.path, line, col, pointer, message)


def escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Build:
    def __init__(self, path: str) -> None:
        self.path = path
        self.positions: dict[str, tuple[int, int]] = {}
        self.problems: list[Problem] = []

    def node(self, node: yaml.Node, pointer: str) -> Any:
        self.positions[pointer] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if node.tag not in _PLAIN_TAGS:
            hint = "; a value starting with `!` must be quoted" if node.tag.startswith("!") else ""
            self._problem(node, pointer, f"yaml tag `{node.tag}` is not allowed (plain data only){hint}")
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._problem(key_node, pointer, "yaml merge keys (`<<`) are not allowed")
                    continue
                key = self.node(key_node, pointer + "/__key__")
                if not isinstance(key, str):
                    self._problem(key_node, pointer, f"mapping key `{key}` must be a string")
                    continue
                if key in out:
                    self._problem(key_node, pointer, f"duplicate key `{key}`")
                    continue
                out[key] = self.node(value_node, f"{pointer}/{escape_pointer_token(key)}")
            self.positions.pop(pointer + "/__key__", None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.node(item, f"{pointer}/{i}") for i, item in enumerate(node.value)]
        value = _SCALAR.construct_object(node, deep=True)
        if isinstance(value, (_dt.date, _dt.datetime)):
            return value.isoformat()
        return value

    def _problem(self, node: yaml.Node, pointer: str, message: str) -> None:
        self.problems.append(
            Problem(self.path, node.start_mark.line + 1, node.start_mark.column + 1, pointer, message)
        )


def load_yaml(path: Path, display: str | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Load one YAML file (a single document).  Returns the document or the problems found."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, None, None, "", f"file is not valid utf-8 ({exc.reason})")]
    except OSError as exc:
        return None, [Problem(shown, None, None, "", f"cannot read file: {exc.strerror or exc}")]
    return load_yaml_text(text, shown)


def load_yaml_text(text: str, shown: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Like :func:`load_yaml`, for text already read; ``shown`` names it in problems."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return None, [Problem(shown, line, col, "", f"malformed yaml: {msg}")]
    except yaml.YAMLError as exc:
        return None, [Problem(shown, None, None, "", f"malformed yaml: {exc}")]
    if len(nodes) != 1 or nodes[0] is None:
        return None, [Problem(shown, 1, 1, "", "file must hold exactly one yaml document")]
    build = _Build(shown)
    try:
        data = build.node(nodes[0], "")
    except yaml.YAMLError as exc:
        return None, [Problem(shown, None, None, "", f"malformed yaml: {exc}")]
    if build.problems:
        return None, build.problems
    return YamlDocument(shown, data, build.positions), []
