"""Every facegate hook.  Hooks *register* or *observe*; none can decide access.

Plugins implement them with ``@facegate.hookimpl`` and are found through the
``facegate`` entry-point group, but load only when the operator's allow-list names them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("facegate")
hookimpl = pluggy.HookimplMarker("facegate")


@hookspec
def register_recognizers(register: Callable[..., None]) -> None:
    """Call ``register(info: RecognizerInfo)`` once per recognizer the plugin provides."""


@hookspec
def register_cel_functions(register: Callable[..., None]) -> None:
    """Call ``register(name, impl, arg_types, result_type)`` per pure CEL function."""


@hookspec
def record_decision(record: Mapping[str, Any]) -> None:
    """Observe a decision or outcome record after its durable audit write; return nothing."""
