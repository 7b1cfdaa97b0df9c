"""The dict form of what the decisions of one tally share, built by generated code.

``Decision.to_dict()`` must return data nothing else holds: every dict and list in it is new.
Copying the shared parts of a decision -- its determining rules' references, its warnings, its
merged obligations, the policy's identity -- dict by dict costs more than building them: one
generated function per tally (the set of rules that applied, :class:`facegate._decide.Tally`)
returns them as literals, every dict and list made afresh by the interpreter's own
instructions, with no copy, call or comprehension per item.  The function is generated on first
use from the tally's values (JSON data from the pack: strings, numbers, booleans, lists,
objects), so it renders the decision as it was decided; a value that has no exact Python literal
leaves the tally without a form, and ``to_dict()`` copies as before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.Lock()
#: a value with no literal, or one nested too deep for the interpreter to compile
_NO_LITERAL = (ValueError, RecursionError, SyntaxError, MemoryError)


class SharedForm:
    """``build()``: fresh ``(determining, warnings, obligations, errors, policy)`` for one tally."""

    __slots__ = ("_build", "_parts", "detailed")

    def __init__(self, determining: tuple[dict[str, Any], ...], warnings: tuple[dict[str, Any], ...],
                 obligations: tuple[dict[str, Any], ...], errors: tuple[dict[str, Any], ...], policy: dict[str, Any],
                 detailed: bool = False) -> None:
        self._parts = (list(determining), list(warnings), list(obligations), list(errors), policy)
        self._build: Any = None
        self.detailed = detailed  # a determining or warning rule's message has a detail (added per decision)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its parts (the generated function is made again where it is used)."""
        return SharedForm, (*self._parts, self.detailed)

    def build(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]] | None:
        build = self._build
        if build is None:
            with _LOCK:
                build = self._build
                if build is None:
                    build = self._build = _generate(self._parts)
        return build() if build is not False else None


def shallow_copier(groups: tuple[tuple[dict[str, Any], ...], ...]) -> Callable[[], tuple[tuple[dict[str, Any], ...], ...]]:
    """A function returning, for each group of dicts, a tuple of new dicts with the same items
    (``dict(d)`` each; the values themselves are shared, as ``dict(d)`` shares them) -- one generated
    expression instead of a ``tuple(map(dict, group))`` per group."""
    namespace: dict[str, Any] = {}
    parts = []
    for group in groups:
        names = []
        for item in group:
            name = f"_d{len(namespace)}"
            namespace[name] = item
            names.append(f"{{**{name}}}, ")
        parts.append("(" + "".join(names) + ")")
    exec(compile(f"def _copies():\n    return ({', '.join(parts)},)\n", "<decision copies>", "exec"), namespace)  # noqa: S102 - names only
    return namespace["_copies"]  # type: ignore[no-any-return]


def copier(value: Any) -> Callable[[], Any] | None:
    """A function returning a fresh copy of ``value`` (JSON-like data; tuples become lists) each
    call, or ``None`` when a value in it has no exact literal."""
    try:
        return _function(_literal(value))
    except _NO_LITERAL:
        return None


def _generate(parts: tuple[Any, ...]) -> Any:
    """The function returning ``parts`` as fresh data, or ``False`` when a value has no literal."""
    try:
        return _function("(" + ", ".join(_literal(part) for part in parts) + ")")
    except _NO_LITERAL:
        return False


def _function(expression: str) -> Callable[[], Any]:
    namespace: dict[str, Any] = {}
    exec(compile(f"def _form():\n    return {expression}\n", "<decision form>", "exec"), namespace)  # noqa: S102 - literals of the pack's own JSON values
    return namespace["_form"]  # type: ignore[no-any-return]


def _literal(value: Any) -> str:
    """Python source that evaluates to a fresh copy of ``value`` (tuples become lists, as in JSON)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return repr(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("no literal for a non-finite number")
        return repr(value)
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise ValueError("an object key that is not a string")
        return "{" + ", ".join(f"{k!r}: {_literal(v)}" for k, v in value.items()) + "}"
    if kind is list or kind is tuple:
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise ValueError(f"no literal for `{kind.__name__}`")
