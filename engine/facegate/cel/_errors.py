"""The exceptions of ``facegate.cel``::

    facegate.errors.FacegateError
    +-- CELCompileError        load time: the expression cannot become a program
    |   +-- CELSyntaxError     it does not parse, or a macro is misused
    |   +-- CELCheckError      it parses but is wrong: unknown field or function, type
    |                          mismatch known from the schema, a static limit exceeded
    +-- CELEvalError           ``Program.evaluate`` only: the result was an error value
    +-- CELUsageError          the API called wrongly: unknown backend, a custom function that
                               is named like a standard one or badly typed (also a ValueError)

Each carries ``message`` (one lowercase line, user input in backticks); compile errors
also carry ``line`` and ``column`` (1-based) of the offending text.  The fast path
(``Program.run``) raises none of them: evaluation errors are :class:`CELError` values.
"""

from __future__ import annotations

from ..errors import FacegateError
from ._values import CELError


class CELUsageError(FacegateError, ValueError):
    """The CEL API was called with arguments it cannot accept."""


class CELCompileError(FacegateError):
    """An expression that cannot become a program.

    ``others``: the further problems the checker found in the same expression, in text order
    (it reports them all in one run; this error is the first).
    """

    def __init__(self, message: str, line: int = 1, column: int = 1, others: tuple[CELCompileError, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.others = others

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message, self.line, self.column, self.others))


class CELSyntaxError(CELCompileError):
    """The text does not parse, or a macro such as ``has()`` is misused."""


class CELCheckError(CELCompileError):
    """The expression parses but is wrong for its schema, functions or limits."""


class CELEvalError(FacegateError):
    """Raised by ``Program.evaluate`` when the expression evaluates to an error."""

    def __init__(self, error: CELError) -> None:
        super().__init__(error.message)
        self.error = error
        self.message = error.message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.error,))
