"""Compile phase: CEL text -> an evaluable program.  The one module that knows the CEL backend.

The rest of the engine sees only :func:`compile_expression`, :func:`activation_factory`,
:class:`Compiled` and :class:`EvalError`: a compiled program's ``run(activation)`` returns the
CEL value as plain Python, or an :class:`EvalError` *value* (errors are part of a decision,
never raised).  The backend is cel-python's interpreter, the semantic reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import celpy
import celpy.celparser
import celpy.evaluation

BACKENDS = ("interpreter",)
DEFAULT_BACKEND = "interpreter"


@dataclass(frozen=True, slots=True)
class EvalError:
    """A CEL evaluation error, carried as a value."""

    message: str

    def __bool__(self) -> bool:  # an error is never truthy by accident
        raise TypeError("EvalError has no truth value; test `isinstance(x, EvalError)`")


class CompileError(Exception):
    """CEL text failed to parse or check; ``line``/``column`` are 1-based within the text."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


_ENV = celpy.Environment()


def _to_python(value: Any) -> Any:
    if isinstance(value, celpy.celtypes.BoolType):
        return bool(value)
    if isinstance(value, (celpy.celtypes.IntType, celpy.celtypes.UintType)):
        return int(value)
    if isinstance(value, celpy.celtypes.DoubleType):
        return float(value)
    if isinstance(value, celpy.celtypes.StringType):
        return str(value)
    if isinstance(value, celpy.celtypes.BytesType):
        return bytes(value)
    if isinstance(value, celpy.celtypes.ListType):
        return [_to_python(v) for v in value]
    if isinstance(value, celpy.celtypes.MapType):
        return {_to_python(k): _to_python(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Compiled:
    text: str
    backend: str
    _program: Any

    def run(self, activation: Any) -> Any:
        """Evaluate against an activation from :func:`make_activation`; errors are returned."""
        try:
            result = self._program.evaluate(activation)
        except celpy.evaluation.CELEvalError as exc:
            return EvalError(str(exc.args[0]) if exc.args else "evaluation error")
        except Exception as exc:  # cel-python leaks raw Python errors for some inputs
            return EvalError(f"{type(exc).__name__}: {exc}")
        if isinstance(result, celpy.evaluation.CELEvalError):
            return EvalError(str(result.args[0]) if result.args else "evaluation error")
        return _to_python(result)


def _wrap(impl: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return celpy.json_to_cel(impl(*(_to_python(a) for a in args)))
        except Exception as exc:
            return celpy.evaluation.CELEvalError(f"function failed: {type(exc).__name__}: {exc}")

    return call


def compile_expression(
    text: str,
    *,
    schema: Mapping[str, Any] | None = None,
    backend: str = DEFAULT_BACKEND,
    functions: Mapping[str, Any] | None = None,
) -> Compiled:
    """Parse (and, where the backend can, check against ``schema``) one CEL expression.

    ``functions`` maps names to registered :class:`facegate._plugins.CelFunction` objects.
    """
    if backend not in BACKENDS:
        raise CompileError(f"unknown cel backend `{backend}`")
    try:
        ast = _ENV.compile(text)
    except celpy.celparser.CELParseError as exc:
        line, col = getattr(exc, "line", None), getattr(exc, "column", None)
        first = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
        return _raise_syntax(first, line, col)
    bound = {name: _wrap(fn.impl) for name, fn in (functions or {}).items()}
    program = _ENV.program(ast, functions=bound or None)
    return Compiled(text, backend, program)


def check_syntax(text: str) -> None:
    """Raise :class:`CompileError` with the position of a syntax error in ``text``, if any."""
    try:
        _ENV.compile(text)
    except celpy.celparser.CELParseError as exc:
        first = str(exc.args[0]).splitlines()[0] if exc.args else "syntax error"
        _raise_syntax(first, getattr(exc, "line", None), getattr(exc, "column", None))


def _raise_syntax(message: str, line: int | None, col: int | None) -> Compiled:
    raise CompileError(f"cel syntax error near `{message.strip()}`", line, col)


def activation_factory(constants: Mapping[str, Any], backend: str = DEFAULT_BACKEND) -> Callable[[Any], Any]:
    """Return ``make(request) -> activation``: constants are converted once, the request once per decision."""
    fixed = {name: celpy.json_to_cel(value) for name, value in constants.items()}

    def make(request: Any) -> Any:
        activation = dict(fixed)
        activation["request"] = celpy.json_to_cel(request)
        return activation

    return make
