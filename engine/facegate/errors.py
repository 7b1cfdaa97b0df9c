"""The whole facegate exception tree.

::

    FacegateError                      base of everything facegate raises
    ├── PolicyError                    a pack cannot be loaded; .problems lists every Problem
    ├── CompileError                   one CEL condition cannot be compiled (.line, .column); the
    │                                  loader turns it into a Problem of a PolicyError
    ├── facegate.cel.CELCompileError   the CEL API: text that cannot become a program
    │   ├── CELSyntaxError             ... does not parse
    │   └── CELCheckError              ... is wrong for its schema, functions or limits
    ├── facegate.cel.CELEvalError      the CEL API: ``Program.evaluate`` produced an error value
    ├── facegate.cel.CELUsageError     the CEL API called wrongly (unknown backend, a function named
    │                                  like a built-in); also a ``ValueError``
    ├── RequestError                   a request is not a JSON object at all (decide() never raises it)
    ├── PluginError                    a plugin is broken, not allowed, or registers something invalid
    │   └── RecognizerError            a recognizer raised, timed out or returned malformed output
    ├── ConfigError                    operator configuration is invalid
    └── StoreError                     evidence storage failed (audit log, consent registry, gallery)
        └── AuditWriteError            a decision record could not be durably written (the gate denies)

Evaluation errors inside a rule are *not* raised: they are part of the decision.
Messages are one lowercase line; user input appears in backticks.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One actionable problem in a policy pack, located for a human."""

    file: str
    line: int | None
    column: int | None
    pointer: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        ptr = f" at {self.pointer}" if self.pointer else ""
        return f"{where}{ptr}: {self.message}"


class FacegateError(Exception):
    """Base class of every exception facegate raises."""


class PolicyError(FacegateError):
    """A policy pack failed to load; ``problems`` holds every problem found, not just the first."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        first = str(self.problems[0]) if self.problems else "invalid policy pack"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class CompileError(FacegateError):
    """A CEL condition failed to parse or check; ``line``/``column`` are 1-based within its text;
    ``others``: the further problems found in the same condition (``CompileError`` each)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 others: tuple[CompileError, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.others = others


class RequestError(FacegateError):
    """A request could not be read at all (not JSON, not an object)."""


class ConfigError(FacegateError):
    """Operator configuration is invalid."""


class PluginError(FacegateError):
    """A plugin failed to load, is not allowed, or registered something invalid."""


class RecognizerError(PluginError):
    """A recognizer raised, exceeded its timeout, or returned malformed output."""


class StoreError(FacegateError):
    """Evidence storage (audit log, consent registry, gallery) failed."""


class AuditWriteError(StoreError):
    """A record could not be durably written to the audit log; the gate denies the request."""
