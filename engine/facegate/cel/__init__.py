"""CEL for facegate: cel-python's parser, compiled to plain Python, checked at load time.

    >>> from facegate import cel
    >>> program = cel.compile('request.operation == "analyze" && "race" in request.attributes')
    >>> program.evaluate({"request": {"operation": "analyze", "attributes": ["race"]}})
    True

``compile`` parses (cel-python's grammar), checks (against an optional JSON Schema of the
activation, and typed custom functions), and generates one Python function per
expression that works directly on the request's dicts, lists, strings and numbers.
``Program.run`` is the engine's path: errors are :class:`CELError` values, never raised.
``backend="interpreter"`` runs cel-python's own interpreter instead: the reference the
conformance and differential tests compare against.  Values: see :mod:`._values`.
"""

from ._errors import CELCheckError, CELCompileError, CELEvalError, CELSyntaxError, CELUsageError
from ._functions import CelFunction
from ._namespace import Budget
from ._program import Limits, Program, compile
from ._values import CELError, CelType, Duration, Timestamp, UInt
from .testing import DifferentialReport, random_activations, testing_differential

__all__ = [
    "Budget",
    "CELCheckError",
    "CELCompileError",
    "CELError",
    "CELEvalError",
    "CELSyntaxError",
    "CELUsageError",
    "CelFunction",
    "CelType",
    "DifferentialReport",
    "Duration",
    "Limits",
    "Program",
    "Timestamp",
    "UInt",
    "compile",
    "random_activations",
    "testing_differential",
]
