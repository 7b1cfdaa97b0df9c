"""Explanations people can act on: unmet permits and remedies.

- :func:`unmet_permits` -- for every deny, the permits of the request's operation that did not
  apply, each with the failed conditions in plain words (``Decision.unmet``).
- :func:`find_remedies` -- the smallest sets of changes to actionable facts that turn a deny into
  a permit under the same pack, each re-decided to prove it (``Decision.remedies``).

Both are computed from the rules' own conditions, split into items by :mod:`._items`.  Nothing
here is imported by ``import facegate`` beyond :mod:`._unmet`; the plain-words renderer loads on
the first deny.
"""

from __future__ import annotations

from typing import Any

from ._unmet import describe, unmet_permits

__all__ = ["ACTIONABLE", "RemedyReport", "describe", "find_remedies", "remedies_of", "unmet_permits"]


def __getattr__(name: str) -> Any:  # lazy: remedies pull in the plain-words renderer
    if name in ("find_remedies", "remedies_of", "RemedyReport"):
        from . import _remedies

        return getattr(_remedies, name)
    if name == "ACTIONABLE":
        from ._facts import ACTIONABLE

        return ACTIONABLE
    raise AttributeError(name)
