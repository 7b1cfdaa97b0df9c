"""Is there *any* lawful variant of a denied request?  A proof for "no lawful variant".

The remedy search (:mod:`facegate.explain._remedies`) is bounded; when it finds nothing, this
asks the solver whether some assignment of the actionable facts -- every other fact held as the
request states it (present with its value, or absent) -- is permitted.  Unsatisfiable: no remedy
exists, proved.  Satisfiable: the variant is re-decided and returned.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any
from collections.abc import Mapping

import z3  # type: ignore[import-untyped]
from ..explain._facts import get
from ._model import PolicyModel
from ._smt import Sym


def lawful_variant(policy: Any, request: Mapping[str, Any], *, day: str | None = None) -> dict[str, Any]:
    """``{"status": "none"}`` (proved), ``{"status": "found", "variant": ..., "decision": ...}`` or ``unknown``."""
    model = PolicyModel(policy, day=day)
    solver = z3.Solver()
    solver.set("timeout", 30_000)
    solver.add(model.valid(), model.permit, *pins(model, request))
    result = solver.check()
    if result == z3.unsat:
        return {"status": "none", "detail": "no change to the actionable facts makes this request permitted (proved)"}
    if result == z3.unknown:
        return {"status": "unknown", "detail": solver.reason_unknown()}
    variant = model.witness(solver)
    at = _dt.datetime.fromisoformat(model.day + "T12:00:00+00:00")
    d = policy.decide(variant, at=at)
    return {"status": "found" if d.permitted else "unknown", "variant": variant, "decision": d.effect}


def pins(model: PolicyModel, request: Mapping[str, Any], *, free_actionable: bool = True) -> list[Any]:
    """Hold every fixed fact of ``request``; actionable facts (and objects holding them) stay free
    (with ``free_actionable=False`` every fact is held: the model then describes ``request`` alone)."""
    req = model.request
    actionable = [leaf.path for leaf in req.leaves if leaf.actionable] if free_actionable else []
    out = []
    for path in req.objects:
        if any(a[: len(path)] == path for a in actionable):
            continue
        out.append(req.present[path] == z3.BoolVal(get(request, path)[0]))
    for leaf in req.leaves:
        if (free_actionable and leaf.actionable) or leaf.required:
            if leaf.required:
                out.append(_equals(req.values[leaf.path], get(request, leaf.path)[1]))
            continue
        present, value = get(request, leaf.path)
        out.append(req.present[leaf.path] == z3.BoolVal(present))
        if present:
            out.append(_equals(req.values[leaf.path], value))
    return out


def _equals(sym: Sym, value: Any) -> Any:
    if sym.kind == "enum":
        return sym.term == sym.domain.index(value) if value in sym.domain else z3.BoolVal(False)
    if sym.kind == "bool":
        return sym.term == z3.BoolVal(bool(value))
    if sym.kind == "int":
        return sym.term == int(value)
    if sym.kind == "string":
        return sym.term == z3.StringVal(str(value))
    if sym.kind == "list":
        return z3.And([b == z3.BoolVal(v in value) for v, b in sym.members.items()])
    return z3.BoolVal(True)  # a shape not modelled: left free (over-approximates: "none" stays a proof)
