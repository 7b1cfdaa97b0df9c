"""facegate: regulation-as-code for face recognition.

Load a policy pack, decide requests against it, and (through the gate) let only approved
operations reach a recognizer.
"""

from __future__ import annotations

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
from .gate import Gate, Outcome
from .hookspecs import hookimpl
from .policy import Decision, Policy, load_policy

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
