"""Is there *any* lawful variant of a denied request?  A proof for "no lawful variant".

The remedy search (:mod:`facegate.explain._remedies`) is bounded; when it finds nothing, this
asks the solver whether some assignment of the actionable facts -- every other fact held as the
request states it (present with its value, or absent) -- is permitted.  Unsatisfiable: no remedy
exists, proved.  Satisfiable: the variant is re-decided and returned.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Mapping
from typing import Any

import z3  # type: ignore[import-untyped]

from ..explain._facts import get
from ._model import PolicyModel
from ._smt import Sym

_LOCK = threading.Lock()  # one z3 context per process: solve one question at a time


def model_for(policy: Any, day: str | None) -> PolicyModel:
    """The policy's SMT model for ``day`` (today by default), built once and kept on the policy."""
    day = day or _dt.datetime.now(_dt.UTC).date().isoformat()
    cache = policy.__dict__.setdefault("_smt_models", {})
    model = cache.get(day)
    if model is None:
        model = cache[day] = PolicyModel(policy, day=day)
    return model  # type: ignore[no-any-return]


def lawful_variant(policy: Any, request: Mapping[str, Any], *, day: str | None = None) -> dict[str, Any]:
    """``{"status": "none"}`` (proved), ``{"status": "found", "variant": ..., "decision": ...}`` or ``unknown``."""
    with _LOCK:
        model = model_for(policy, day)
        solver = z3.Solver()
        solver.set("timeout", 30_000)
        solver.add(model.valid(), model.permit, *pins(model, request))
        result = solver.check()
        variant = model.witness(solver) if result == z3.sat else None
        reason = solver.reason_unknown() if result == z3.unknown else ""
    if result == z3.unsat:
        return {"status": "none", "detail": "no change to the actionable facts makes this request permitted (proved)"}
    if variant is None:
        return {"status": "unknown", "detail": reason}
    at = _dt.datetime.fromisoformat(model.day + "T12:00:00+00:00")
    d = policy.decide(variant, at=at)
    return {"status": "found" if d.permitted else "unknown", "variant": variant, "decision": d.effect}


def pins(model: PolicyModel, request: Mapping[str, Any], *, free_actionable: bool = True) -> list[Any]:
    """Hold every fixed fact of ``request``; actionable facts (and objects holding them) stay free
    (with ``free_actionable=False`` every fact is held: the model then describes ``request`` alone)."""
    from ..explain._facts import actionable_for

    req = model.request
    prefixes = actionable_for(model.policy)
    actionable = [leaf.path for leaf in req.leaves if leaf.actionable_in(prefixes)] if free_actionable else []
    out = []
    for path in req.objects:
        if any(a[: len(path)] == path for a in actionable):
            continue
        out.append(req.present[path] == z3.BoolVal(get(request, path)[0]))
    for leaf in req.leaves:
        if (free_actionable and leaf.actionable_in(prefixes)) or leaf.required:
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
