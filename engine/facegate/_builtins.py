"""facegate's own plugin: the default CEL functions, registered through the public hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._workdays import working_days_between
from .hookspecs import hookimpl


def intersects(a: list[Any], b: list[Any]) -> bool:
    """True when the two lists share at least one element (CEL equality)."""
    return any(x == y and type(x) is type(y) for x in a for y in b)


def contains_all(a: list[Any], b: list[Any]) -> bool:
    """True when every element of ``b`` is in ``a``."""
    return all(any(x == y and type(x) is type(y) for x in a) for y in b)


@hookimpl
def register_cel_functions(register: Callable[..., None]) -> None:
    register("intersects", intersects, ("list", "list"), "bool")
    register("containsAll", contains_all, ("list", "list"), "bool")
    register("workingDaysBetween", working_days_between, ("string", "string", "list", "list", "list"), "int")
