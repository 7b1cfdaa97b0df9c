"""What a generated program runs with: the evaluation budget and the runtime it calls into.

:mod:`._compiler` writes Python source that refers only to its own locals and to the names
below (plus constants it adds per program), so this mapping is the generated code's whole world.
"""

from __future__ import annotations

from typing import Any, Final

from . import _functions as fn
from . import _runtime as rt
from ._values import INT64_MAX, INT64_MIN, CELError

_UNLIMITED: Final = 2**62


class Budget:
    """Evaluation steps left for one decision, shared by all programs it evaluates.

    A program is charged one step per function call site outside comprehensions (up
    front, whether or not a short-circuit skips the call), and per comprehension
    iteration one step plus one per call site in the body.  When the count goes below
    zero, evaluation stops with the error ``evaluation budget exceeded``.  Not
    thread-safe: use one budget per decision, as a decision runs on one thread.
    """

    __slots__ = ("steps",)

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __repr__(self) -> str:
        return f"Budget(steps={self.steps})"


BUDGET_EXCEEDED: Final = CELError("evaluation budget exceeded")

#: The names every generated program sees; the code generator adds the program's own constants.
NAMESPACE: Final[dict[str, Any]] = {
    "CELError": CELError,
    "_Budget": Budget,
    "_UNLIMITED": _UNLIMITED,
    "_BUDGET": BUDGET_EXCEEDED,
    "_OVERFLOW": CELError("return error for overflow"),
    "_MIN": INT64_MIN,
    "_MAX": INT64_MAX,
    "_SEQ": rt._SIMPLE_EQ,
    "_ORD": rt._ORDERED,
    "_SIZED": frozenset([str, bytes, list, dict, tuple]),
    "_eq": rt.eq,
    "_ne": rt.ne,
    "_lt": rt.lt,
    "_le": rt.le,
    "_gt": rt.gt,
    "_ge": rt.ge,
    "_in": rt.contains,
    "_add": rt.add,
    "_sub": rt.sub,
    "_mul": rt.mul,
    "_div": rt.div,
    "_mod": rt.mod,
    "_neg": rt.neg,
    "_not": rt.not_,
    "_index": rt.index,
    "_select": rt.select,
    "_select_path": rt.select_path,
    "_has": rt.has,
    "_variable": rt.variable,
    "_resolve": rt.resolve,
    "_make_list": rt.make_list,
    "_make_map": rt.make_map,
    "_iter": rt.iter_range,
    "_err": rt.as_bool_error,
    "_first_error": rt.first_error,
    "_size": fn.size,
    "_starts_with": fn.starts_with,
    "_ends_with": fn.ends_with,
    "_str_contains": fn.str_contains,
    "_matches": fn.matches,
}
