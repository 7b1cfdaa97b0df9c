"""Compile phase: CEL text -> an evaluable program.  The one module that knows the CEL backend.

The rest of the engine sees only :func:`compile_expression`, :func:`check_syntax`,
:func:`activation_factory`, :func:`new_budget`, :class:`Compiled` and :class:`EvalError`.
A compiled program's ``run(activation, budget)`` returns the CEL value as plain Python, or an
:class:`EvalError` *value* (errors are part of a decision, never raised).

Backends (:mod:`facegate.cel`): ``native`` (default) compiles each condition once into Python
operating directly on the request's dicts, lists and strings; ``interpreter`` runs cel-python's
interpreter, the semantic reference the differential tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import cel
from .errors import CompileError

__all__ = ["BACKENDS", "DECISION_BUDGET", "DEFAULT_BACKEND", "LIMITS", "CompileError", "Compiled", "EvalError",
           "activation_factory", "check_syntax", "compile_expression", "new_budget", "schema_types"]

BACKENDS = ("native", "interpreter")
DEFAULT_BACKEND = "native"
#: Evaluation steps one decision may spend across all its rules; beyond it a rule errors
#: (so a forbid fails closed).  Static per-expression limits are checked at load time.
DECISION_BUDGET = 1_000_000
LIMITS = cel.Limits(max_length=4000, max_depth=60, max_comprehension_nesting=3, max_cost=100_000)


@dataclass(frozen=True, slots=True)
class EvalError:
    """A CEL evaluation error, carried as a value."""

    message: str

    def __bool__(self) -> bool:  # an error is never truthy by accident
        raise TypeError("EvalError has no truth value; test `isinstance(x, EvalError)`")


@dataclass(frozen=True)
class Compiled:
    text: str
    backend: str
    program: cel.Program

    def run(self, activation: Mapping[str, Any], budget: cel.Budget | None = None) -> Any:
        """Evaluate against an activation from :func:`activation_factory`; errors are returned."""
        value = self.program.run(activation, budget)
        if type(value) is cel.CELError:
            return EvalError(value.message)
        return value


def compile_expression(
    text: str,
    *,
    schema: Mapping[str, Any] | Any | None = None,
    backend: str = DEFAULT_BACKEND,
    functions: Mapping[str, Any] | None = None,
) -> Compiled:
    """Parse and check one CEL expression against ``schema`` (the activation's JSON Schema, or
    :func:`schema_types` of it when many expressions are compiled against one schema).

    ``functions`` maps names to registered :class:`facegate._plugins.CelFunction` objects.
    """
    if backend not in BACKENDS:
        raise CompileError(f"unknown cel backend `{backend}`; expected one of {', '.join(BACKENDS)}")
    try:
        program = cel.compile(text, schema=schema, functions=functions, backend=backend, limits=LIMITS)
    except cel.CELCompileError as exc:
        others = tuple(CompileError(o.message, o.line, o.column) for o in exc.others)
        raise CompileError(exc.message, exc.line, exc.column, others) from exc
    return Compiled(text, backend, program)


def schema_types(schema: Mapping[str, Any]) -> Any:
    """``schema`` converted once for the checker (``compile_expression(schema=...)``); read now."""
    from .cel._check import Converted

    return Converted(schema)


def check_syntax(text: str) -> None:
    """Raise :class:`CompileError` with the position of a syntax error in ``text``, if any."""
    from .cel import _parse  # parsing is all it takes: nothing is generated for the text as written

    try:
        _parse.parse(text, LIMITS.max_depth)
    except cel.CELSyntaxError as exc:
        raise CompileError(exc.message, exc.line, exc.column) from exc
    except (cel.CELCompileError, RecursionError):
        pass  # not a syntax error: the expanded text is checked in full


def activation_factory(constants: Mapping[str, Any], backend: str = DEFAULT_BACKEND) -> Callable[[Any], dict[str, Any]]:
    """Return ``make(request) -> activation``; both backends take plain Python values."""
    fixed = dict(constants)

    def make(request: Any) -> dict[str, Any]:
        activation = dict(fixed)
        activation["request"] = request
        return activation

    return make


def new_budget() -> cel.Budget:
    """A fresh evaluation budget for one decision (shared by all its rules)."""
    return cel.Budget(DECISION_BUDGET)
