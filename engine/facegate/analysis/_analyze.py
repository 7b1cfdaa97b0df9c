"""``facegate analyze``: what holds for every valid request, per pack.

- **never applies**: a rule no valid request makes apply (dead text, or a contradiction);
- **overridden**: a permit every request it applies to is denied by a forbid anyway;
- **shadowed**: a permit (forbid) that applies only where another permit (forbid) of the pack
  applies too -- redundant for the effect (its obligations or message may still matter);
- **always denied**: an operation no valid request can be permitted for;
- **overlaps**: a permit and a forbid that both apply to some request (the forbid wins), with an
  example request.

Each "never"/"always" finding is a proof (the solver found no request); each example request
was re-decided concretely.  Rules the translation does not cover are listed as not analysable
and get free outcomes, so they can neither make a finding false nor hide one.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any

import z3  # type: ignore[import-untyped]

from ._model import PolicyModel
from ._shrink import shrink


@dataclass
class Analysis:
    pack: str
    day: str
    rules: int
    never_applies: list[str] = field(default_factory=list)
    overridden: list[dict[str, Any]] = field(default_factory=list)
    shadowed: list[dict[str, Any]] = field(default_factory=list)
    always_denied: list[str] = field(default_factory=list)
    overlaps: list[dict[str, Any]] = field(default_factory=list)
    not_analysable: list[dict[str, str]] = field(default_factory=list)
    approximate: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def analyze(policy: Any, *, day: str | None = None, timeout_ms: int = 10_000) -> Analysis:
    started = time.perf_counter()
    model = PolicyModel(policy, day=day)
    out = Analysis(policy.id, model.day, len(policy.rules),
                   not_analysable=[{"rule": r, "why": w} for r, w in model.not_analysable],
                   approximate=list(model.request.approximate))
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(model.valid())

    def sat(*terms: Any, what: str) -> bool | None:
        solver.push()
        solver.add(*terms)
        r = solver.check()
        solver.pop()
        if r == z3.unknown:
            out.unknown.append(what)
            return None
        return bool(r == z3.sat)

    def example(*terms: Any) -> dict[str, Any] | None:
        solver.push()
        solver.add(*terms)
        found = model.witness(solver) if solver.check() == z3.sat else None
        solver.pop()
        return found

    live = {}
    for rid, m in model.rules.items():
        if m.skipped:
            continue
        can = sat(m.applied, what=f"can {rid} apply")
        live[rid] = can is not False
        if can is False and m.analysable:
            out.never_applies.append(rid)
    enforce = [m for m in model.rules.values() if m.rule.mode == "enforce" and live.get(m.rule.id)]
    permits = [m for m in enforce if m.rule.effect == "permit"]
    forbids = [m for m in enforce if m.rule.effect == "forbid"]
    for p in permits:
        if sat(p.applied, z3.Not(model.forbid_blocks), what=f"is {p.rule.id} overridden") is False:
            out.overridden.append({"rule": p.rule.id, "provision": p.rule.provision})
    for group, kind in ((permits, "permit"), (forbids, "forbid")):
        for a in group:
            for b in group:
                if a is b or not a.analysable or not b.analysable:
                    continue
                if sat(a.applied, z3.Not(b.applied), what=f"is {a.rule.id} shadowed by {b.rule.id}") is False:
                    out.shadowed.append({"rule": a.rule.id, "by": b.rule.id, "effect": kind})
    op_leaf = model.request.values[("operation",)]
    for index, op in enumerate(op_leaf.domain):
        if sat(op_leaf.term == index, model.permit, what=f"can {op} be permitted") is False:
            out.always_denied.append(op)
    at = _dt.datetime.fromisoformat(model.day + "T12:00:00+00:00")
    for p in permits:
        for f in forbids:
            req = example(p.applied, z3.Or(f.applied, f.error))
            if req is None:
                continue

            def both(candidate: dict[str, Any], p: Any = p, f: Any = f) -> bool:
                d = policy.decide(candidate, at=at)
                return not d.violations and d.rules[p.rule.id] == "applied" and d.rules[f.rule.id] in ("applied", "error")

            confirmed = both(req)
            if confirmed:
                req = shrink(req, both)
            out.overlaps.append({"permit": p.rule.id, "forbid": f.rule.id, "example": req, "confirmed": confirmed})
    out.seconds = time.perf_counter() - started
    return out


def render(a: Analysis) -> str:
    lines = [f"{a.pack}: {a.rules} rules analysed for every valid request on {a.day} ({a.seconds:.1f} s)"]
    def section(title: str, items: list[str]) -> None:
        lines.append(f"  {title}: " + ("none" if not items else str(len(items))))
        lines.extend(f"    {i}" for i in items)
    section("rules that can never apply", a.never_applies)
    section("permits always overridden by a forbid", [f"{o['rule']} ({o['provision']})" for o in a.overridden])
    section("rules shadowed by another rule of the same effect", [f"{s['rule']} applies only where {s['by']} applies" for s in a.shadowed])
    section("operations always denied", a.always_denied)
    section("permit/forbid overlaps (the forbid wins)", [f"{o['permit']} x {o['forbid']}" + ("" if o["confirmed"] else " (example not confirmed)") for o in a.overlaps])
    section("not analysable (given any outcome; findings stay sound)", [f"{n['rule']}: {n['why']}" for n in a.not_analysable])
    if a.approximate:
        section("approximations", a.approximate)
    if a.unknown:
        section("undecided (solver timeout)", a.unknown)
    return "\n".join(lines)
