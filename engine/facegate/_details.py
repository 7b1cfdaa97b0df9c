"""Message details: a rule's ``message.expression``, evaluated once per distinct set of values it reads.

A rule's message may carry an expression (``"declared purpose: " + request.purpose``) whose value
is added to the message of every decision the rule determines.  Such an expression is a pure
function of the request fields it reads and tests (``Program.reference_paths`` and
``presence_paths``) and of the pack's parameters (fixed for a loaded pack): the CEL functions it
may call are pure by contract (:class:`facegate._plugins.CelFunction`).  So its value is kept per
rule and per distinct set of those fields' values, when every value read is a JSON scalar (a list
or an object read whole is evaluated each time), the expression has no comprehension, and the
value is a string (the only value a message uses).

The evaluation budget is charged exactly as an evaluation would charge it: such an expression
charges its static call count on entry and nothing else, and with too little budget left it is
the budget error -- no detail -- kept value or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_OTHER: Any = object()  # a field read through something that is not an object: evaluated, not kept
#: a path that ends at its n-th name (absent from its object): CEL tells ``has(a.b.c)`` with ``b``
#: absent (an error) from ``has(a.b.c)`` with ``c`` absent (false), so the key must too
_ABSENT: tuple[Any, ...] = tuple(object() for _ in range(16))
_KEPT = 8192  # values kept per pack (then evaluated each time)
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for depth, name in enumerate(path):
        if type(value) is not dict or depth >= len(_ABSENT):
            return _OTHER
        if name not in value:
            return _ABSENT[depth]
        value = value[name]
    return value


class Details:
    """The message details of one pack's rules (index -> its detail for a request, or ``None``)."""

    def __init__(self, rules: Sequence[Any]) -> None:
        # rule index -> (its compiled expression, request paths read, request paths only tested, static steps);
        # paths None: evaluated every time
        self._plans: dict[int, tuple[Any, tuple[tuple[str, ...], ...] | None, tuple[tuple[str, ...], ...], int]] = {}
        for index, rule in enumerate(rules):
            expr = rule.message_expr
            if expr is None:
                continue
            program = expr.program.program
            paths = program.reference_paths | program.presence_paths
            if program.checked.comprehension_calls or not {p[0] for p in paths} <= {"request", "params"}:
                self._plans[index] = (expr.program, None, (), 0)
                continue
            read = tuple(sorted(p[1:] for p in program.reference_paths if p[0] == "request"))
            tested = tuple(sorted(p[1:] for p in program.presence_paths - program.reference_paths if p[0] == "request"))
            self._plans[index] = (expr.program, read, tested, program.checked.static_calls)
        self._kept: dict[tuple[Any, ...], str] = {}

    def detail(self, index: int, activation: Any, budget: Any) -> str | None:
        compiled, read, tested, steps = self._plans[index]
        request = activation.get("request") if type(activation) is dict else None
        if read is None or type(request) is not dict:
            return _text(compiled.run(activation, budget))
        key: list[Any] = [index]
        for path in read:
            value = _walk(request, path)
            kind = type(value)
            if kind not in _SCALARS and (kind is not object or value is _OTHER):  # _ABSENT's are bare objects
                return _text(compiled.run(activation, budget))  # an object or list read whole, or _OTHER
            key.append(kind)  # keeps 1, 1.0 and true apart
            key.append(value)
        for path in tested:
            value = _walk(request, path)
            if value is _OTHER:
                return _text(compiled.run(activation, budget))
            key.append(value if type(value) is object else True)
        found = self._kept.get(tuple(key))
        if found is None:
            text = _text(compiled.run(activation, budget))
            if text is not None and len(self._kept) < _KEPT:
                self._kept[tuple(key)] = text
            return text
        if steps:
            budget.steps -= steps
            if budget.steps < 0:
                return None  # as the evaluation would: the budget error, no detail
        return found


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
