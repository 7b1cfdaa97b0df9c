"""Safe YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` loses positions and silently keeps the last of two duplicate keys;
both are unacceptable for a lawyer-edited file.  Here every value's JSON pointer maps to its
(line, column), duplicate keys are errors, and only plain data types are constructed.

Hostile files are refused quickly, with file and line (threat model: a pack or case file written
by someone who wants ``check``/``load_policy`` to hang, crash or read outside the pack):

- more than :data:`MAX_FILE_BYTES` bytes (read stops there);
- a symlink leading outside the pack folder, or anything that is not a regular file (a FIFO, a
  device such as ``/dev/zero``) -- checked before the file is opened;
- nesting deeper than :data:`MAX_DEPTH` (measured on the event stream, before any recursion);
- alias expansion beyond :data:`MAX_NODES` values per document (a "billion laughs" bomb).

Not covered: a file swapped between the check and the read (the pack folder is trusted not to
change under a running load).
"""

from __future__ import annotations

import datetime as _dt
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._diagnose import yaml_hint
from .errors import Problem

#: Largest pack or case file read, in bytes.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Deepest nesting of mappings and lists in one document.
MAX_DEPTH = 64
#: Most values one document may expand to (aliases count each time they are used).
MAX_NODES = 200_000

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


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _Build:
    def __init__(self, path: str) -> None:
        self.path = path
        self.positions: dict[str, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def node(self, node: yaml.Node, pointer: str) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge(node)
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


def _refusal(path: Path, root: Path | None) -> str | None:
    """Why ``path`` must not be read (a symlink out of ``root``, not a regular file), if it must not."""
    try:
        if root is not None:
            real, base = path.resolve(), root.resolve()
            if real != base and base not in real.parents:
                return f"refused: the file leads outside the pack (a symlink to `{real}`)"
        mode = os.stat(path).st_mode
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        return f"cannot read file: {getattr(exc, 'strerror', None) or exc}"
    if not stat.S_ISREG(mode):
        return "refused: not a regular file (a device, pipe or folder cannot be a pack file)"
    return None


def read_text(path: Path, shown: str, root: Path | None = None) -> tuple[str | None, list[Problem]]:
    """A pack file's text, refusing what :func:`_refusal` names and files over the size limit."""
    why = _refusal(path, root)
    if why is not None:
        return None, [Problem(shown, None, None, "", why)]
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return None, [Problem(shown, None, None, "", f"cannot read file: {exc.strerror or exc}")]
    if len(data) > MAX_FILE_BYTES:
        return None, [Problem(shown, None, None, "", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it into several files under rules/ or cases/")]
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, [Problem(shown, line, None, "", f"file is not valid utf-8 ({exc.reason}); save it as UTF-8")]


def load_yaml(path: Path, display: str | None = None, root: Path | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Load one YAML file (a single document).  Returns the document or the problems found.

    ``root``: the pack folder; a file leading outside it (through a symlink) is refused."""
    shown = display or str(path)
    text, problems = read_text(path, shown, root)
    if text is None:
        return None, problems
    return load_yaml_text(text, shown)


def _too_deep(text: str, shown: str) -> Problem | None:
    """Nesting beyond :data:`MAX_DEPTH`, found on the event stream (no recursion, linear time)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
                return Problem(shown, line, col, "", f"nesting is deeper than {MAX_DEPTH} levels; a policy file never needs this")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def load_yaml_text(text: str, shown: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Like :func:`load_yaml`, for text already read; ``shown`` names it in problems."""
    try:
        deep = _too_deep(text, shown)
        if deep is not None:
            return None, [deep]
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        return None, [Problem(shown, line, col, "", yaml_hint(msg))]
    except yaml.YAMLError as exc:
        return None, [Problem(shown, None, None, "", f"malformed yaml: {exc}")]
    if len(nodes) != 1 or nodes[0] is None:
        return None, [Problem(shown, 1, 1, "", "file must hold exactly one yaml document")]
    build = _Build(shown)
    try:
        data = build.node(nodes[0], "")
    except _TooLarge as exc:
        mark = exc.node.start_mark
        return None, [Problem(shown, mark.line + 1, mark.column + 1, "", f"the document expands to more than {MAX_NODES:,} values "
                              "(anchors and aliases repeated over and over: an alias bomb?); refused")]
    except yaml.YAMLError as exc:
        return None, [Problem(shown, None, None, "", f"malformed yaml: {exc}")]
    if build.problems:
        return None, build.problems
    return YamlDocument(shown, data, build.positions), []
