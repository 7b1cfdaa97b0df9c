"""Analysis over every valid request (z3): ``analyze``, ``prove``; and the impact of a change: ``diff``, ``replay``.

::

    from facegate import analysis
    analysis.analyze(policy)                       # dead, overridden, shadowed rules; operations always denied; overlaps
    analysis.prove(policy, 'PROPERTY')             # ProofResult: proved | counterexample (re-decided) | unknown
    analysis.lawful_variant(policy, request)       # is ANY change of actionable facts lawful? ("none" is a proof)
    analysis.run_properties(policy)                # the pack's properties.yaml
    analysis.diff(old, new); analysis.decision_change(old, new)
    analysis.replay("facegate.db", new_policy)     # recorded requests re-decided, changes by provision

``analyze``, ``prove``, ``lawful_variant``, ``decision_change`` and the properties need the
``analysis`` extra (``pip install 'facegate[analysis]'``: z3-solver); ``diff`` and ``replay`` do
not.  Nothing is imported until used, so ``import facegate`` never loads z3.
"""

from __future__ import annotations

from typing import Any

_WHERE = {
    "analyze": "._analyze",
    "Analysis": "._analyze",
    "prove": "._prove",
    "ProofResult": "._prove",
    "lawful_variant": "._variants",
    "run_properties": "._properties",
    "load_properties": "._properties",
    "diff": "._diff",
    "decision_change": "._diff",
    "replay": "._replay",
    "replay_records": "._replay",
    "ReplayReport": "._replay",
    "NotAnalysable": "._smt",
}

__all__ = [
    "Analysis", "NotAnalysable", "ProofResult", "ReplayReport", "analyze", "decision_change", "diff",
    "lawful_variant", "load_properties", "prove", "replay", "replay_records", "run_properties",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(where, __name__), name)
