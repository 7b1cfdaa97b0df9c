"""Make a solver's example request readable: drop every optional fact it does not need."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any


def shrink(request: dict[str, Any], keeps: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Remove fields one at a time while ``keeps(candidate)`` stays true (checked concretely)."""
    current = request
    for path in _paths(request):
        trial = _without(current, path)
        if trial is not None and keeps(trial):
            current = trial
    for path in _paths(current):  # then the items of lists that stayed
        node: Any = current
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, list):
            continue
        for item in list(node):
            trial = copy.deepcopy(current)
            holder = trial
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = [x for x in holder[path[-1]] if x != item]
            if keeps(trial):
                current = trial
    return current


def _paths(node: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in node.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out.extend(_paths(value, (*prefix, key)))
    return out


def _without(request: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    out = copy.deepcopy(request)
    node: Any = out
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return None
    if path[-1] not in node:
        return None
    del node[path[-1]]
    return out
