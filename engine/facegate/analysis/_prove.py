"""``facegate prove``: a CEL property over ``request`` and ``decision``, for every valid request.

The property is translated with the pack (:mod:`._model`); the solver looks for a valid request
on which it is false or errors.  None: **proved**.  One: it is decided concretely with
:meth:`Policy.decide` and the property evaluated concretely on it; only a request on which the
concrete property also fails is reported as a **counterexample** (so ``facegate decide`` shows
the same decision).  If the concrete check disagrees with the solver, or anything is not
analysable in a way the proof depends on, the answer is **unknown** -- never "proved".
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import z3  # type: ignore[import-untyped]

from .. import cel
from ._model import PolicyModel, decision_view
from ._shrink import shrink
from ._smt import NotAnalysable


@dataclass
class ProofResult:
    expression: str
    status: str  # proved | counterexample | unknown
    counterexample: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    detail: str = ""
    not_analysable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def proved(self) -> bool:
        return self.status == "proved"

    def to_dict(self) -> dict[str, Any]:
        return {"property": self.expression, "status": self.status, "counterexample": self.counterexample,
                "decision": self.decision, "detail": self.detail,
                "not_analysable": [{"rule": r, "why": w} for r, w in self.not_analysable]}


def prove(policy: Any, prop: str, *, model: PolicyModel | None = None, day: str | None = None, timeout_ms: int = 30_000) -> ProofResult:
    model = model or PolicyModel(policy, day=day)
    try:
        value, err = model.translator.condition(prop)
    except NotAnalysable as exc:
        return ProofResult(prop, "unknown", detail=f"property not analysable: {exc}", not_analysable=model.not_analysable)
    except cel.CELSyntaxError as exc:
        return ProofResult(prop, "unknown", detail=f"property has a syntax error: {exc}")
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(model.valid(), z3.Or(err, z3.Not(value)))
    result = solver.check()
    if result == z3.unsat:
        why = "holds for every valid request"
        if model.not_analysable:
            why += " (rules not analysable were allowed any outcome, so the proof covers them too)"
        return ProofResult(prop, "proved", detail=why, not_analysable=model.not_analysable)
    if result == z3.unknown:
        return ProofResult(prop, "unknown", detail=f"solver gave up: {solver.reason_unknown()}", not_analysable=model.not_analysable)
    request = model.witness(solver)
    at = _dt.datetime.fromisoformat(model.day + "T12:00:00+00:00")
    decision = policy.decide(request, at=at)
    view = decision_view(decision)
    holds = _concrete(prop, request, view)
    if decision.violations or holds is True:
        detail = "the solver's request is not valid" if decision.violations else "the concrete decision satisfies the property"
        return ProofResult(prop, "unknown", request, view, detail=f"not confirmed ({detail}); not proved", not_analysable=model.not_analysable)
    def still_fails(candidate: dict[str, Any]) -> bool:
        d = policy.decide(candidate, at=at)
        return not d.violations and _concrete(prop, candidate, decision_view(d)) is not True

    request = shrink(request, still_fails)
    decision = policy.decide(request, at=at)
    view = decision_view(decision)
    holds = _concrete(prop, request, view)
    return ProofResult(prop, "counterexample", request, view,
                       detail="the property is " + ("false" if holds is False else f"not a bool ({holds})") + " for this request",
                       not_analysable=model.not_analysable)


def _concrete(prop: str, request: dict[str, Any], decision: dict[str, Any]) -> Any:
    program = cel.compile(prop, check=False)
    value = program.run({"request": request, "decision": decision}, None)
    return value.message if type(value) is cel.CELError else value
