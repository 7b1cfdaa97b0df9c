"""The whole facegate exception tree.

::

    FacegateError                      base of everything facegate raises
    ├── PolicyError                    a pack cannot be loaded; .problems lists every Problem
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
