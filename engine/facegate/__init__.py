"""facegate: regulation-as-code for face recognition.

Load a policy pack, decide requests against it, and (through the gate) let only approved
operations reach a recognizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._plugins import load_registry as load_plugins
from ._vocabulary import Reason, RuleOutcome, Status
from .errors import (
    AuditWriteError,
    CompileError,
    ConfigError,
    FacegateError,
    PluginError,
    PolicyError,
    Problem,
    RecognizerError,
    RequestError,
    StoreError,
)
from .hookspecs import hookimpl
from .policy import Decision, Policy, load_policy

if TYPE_CHECKING:
    from .gate import Gate, Outcome

__version__ = "0.1.0"

__all__ = [
    "AuditWriteError",
    "CompileError",
    "ConfigError",
    "Decision",
    "FacegateError",
    "Gate",
    "Outcome",
    "PluginError",
    "Policy",
    "PolicyError",
    "Problem",
    "Reason",
    "RecognizerError",
    "RequestError",
    "RuleOutcome",
    "Status",
    "StoreError",
    "__version__",
    "hookimpl",
    "load_plugins",
    "load_policy",
]


def __getattr__(name: str) -> Any:
    """``Gate`` and ``Outcome`` load the gate (and numpy) only when first used, so that deciding
    -- ``facegate check|decide|test``, or a service that only decides -- starts fast."""
    if name in ("Gate", "Outcome"):
        from . import gate

        return getattr(gate, name)
    raise AttributeError(f"module `facegate` has no attribute `{name}`")
