"""A whole policy as SMT terms: each rule's outcome and the decision, over one symbolic request.

Rule outcomes follow :mod:`facegate._decide` exactly (mode, validity window on the analysed day,
forbid errors deny, permit errors do not apply).  A rule whose conditions do not translate gets
free outcome variables and is listed in :attr:`PolicyModel.not_analysable`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import z3  # type: ignore[import-untyped]

from ..explain._items import request_schema
from ._smt import FALSE, TRUE, NotAnalysable, RequestModel, Sym, Translator

OUTCOMES = ("applied", "not_applicable", "error", "skipped")


@dataclass
class RuleModel:
    rule: Any
    applied: Any
    error: Any
    skipped: bool
    analysable: bool
    why: str = ""


class PolicyModel:
    def __init__(self, policy: Any, *, day: str | None = None, prefix: str = "") -> None:
        self.policy = policy
        self.day = day or _dt.datetime.now(_dt.UTC).date().isoformat()
        self.request = RequestModel(request_schema(policy), prefix)
        self.translator = Translator(self.request, policy.pack.parameters, roots={"decision": self.decision_field})
        self.rules: dict[str, RuleModel] = {}
        self.not_analysable: list[tuple[str, str]] = []
        self.extra: list[Any] = []  # constraints on free outcome variables
        for rule in policy.rules:
            self.rules[rule.id] = self._rule(rule, prefix)
        enforce = [m for m in self.rules.values() if m.rule.mode == "enforce"]
        self.forbid_blocks = z3.Or([z3.Or(m.applied, m.error) for m in enforce if m.rule.effect == "forbid"] or [FALSE])
        self.permit_applies = z3.Or([m.applied for m in enforce if m.rule.effect == "permit"] or [FALSE])
        in_force = policy.in_force(self.day)
        self.permit = z3.And(z3.Not(self.forbid_blocks), self.permit_applies) if in_force else FALSE
        self.in_force = in_force

    def _rule(self, rule: Any, prefix: str) -> RuleModel:
        skipped = bool((rule.valid_from and self.day < rule.valid_from) or (rule.valid_until and self.day > rule.valid_until))
        if skipped:
            return RuleModel(rule, FALSE, FALSE, True, True)
        when, unless, why = [], [], ""
        for c in rule.when:
            try:
                when.append(self.translator.condition(c.expanded))
            except NotAnalysable as exc:
                why = why or str(exc)
        for c in rule.unless:
            try:
                unless.append(self.translator.condition(c.expanded))
            except NotAnalysable as exc:
                why = why or str(exc)
        if why:
            self.not_analysable.append((rule.id, why))
            applied, error = z3.Bool(f"{prefix}{rule.id}:applied?"), z3.Bool(f"{prefix}{rule.id}:error?")
            self.extra.append(z3.Not(z3.And(applied, error)))
            # still exact where it can be: a `when` item that translates and is false makes the rule not apply
            known_false = z3.Or([z3.And(z3.Not(e), z3.Not(v)) for v, e in when] or [FALSE])
            self.extra.append(z3.Implies(known_false, z3.And(z3.Not(applied), z3.Not(error))))
            return RuleModel(rule, applied, error, False, False, why)
        w_false = z3.Or([z3.And(z3.Not(e), z3.Not(v)) for v, e in when] or [FALSE])
        w_err = z3.And(z3.Not(w_false), z3.Or([e for _, e in when] or [FALSE]))
        w_true = z3.And(z3.Not(w_false), z3.Not(w_err))
        if not unless:
            return RuleModel(rule, w_true, w_err, False, True)
        u_false = z3.Or([z3.And(z3.Not(e), z3.Not(v)) for v, e in unless])
        u_err = z3.And(z3.Not(u_false), z3.Or([e for _, e in unless]))
        return RuleModel(rule, z3.And(w_true, u_false), z3.Or(w_err, z3.And(w_true, u_err)), False, True)

    def valid(self) -> Any:
        return z3.And(self.request.valid(), *self.extra) if self.extra else self.request.valid()

    # -- the ``decision`` root of a property
    def decision_field(self, name: str) -> Sym:
        if name == "effect":
            return Sym("enum", z3.If(self.permit, 0, 1), ("permit", "deny"))
        if name == "permitted":
            return Sym("bool", self.permit)
        if name == "reason":
            if not self.in_force:
                return Sym("const", "policy_not_in_force")
            return Sym("enum", z3.If(self.forbid_blocks, 1, z3.If(self.permit_applies, 0, 2)), ("permitted", "forbidden", "no_permit"))
        if name == "rules":
            return Sym("map", self.rule_outcome)
        if name == "provisions":
            members: dict[str, Any] = {}
            for m in self.rules.values():
                if m.rule.mode != "enforce" or m.rule.effect not in ("permit", "forbid"):
                    continue
                counts = z3.And(self.permit, m.applied) if m.rule.effect == "permit" else z3.Or(m.applied, m.error)
                members[m.rule.provision] = z3.Or(members.get(m.rule.provision, FALSE), counts)
            return Sym("list", None, tuple(members), members)
        raise NotAnalysable(f"`decision.{name}` (properties may use effect, permitted, reason, rules[id], provisions)")

    def rule_outcome(self, rule_id: str) -> Sym:
        m = self.rules.get(rule_id)
        if m is None:
            raise NotAnalysable(f"unknown rule `{rule_id}` in decision.rules")
        if m.skipped:
            return Sym("const", "skipped")
        return Sym("enum", z3.If(m.applied, 0, z3.If(m.error, 2, 1)), OUTCOMES)

    def witness(self, solver: z3.Solver) -> dict[str, Any]:
        return self.request.request_of(solver.model())


def decision_view(decision: Any) -> dict[str, Any]:
    """The ``decision`` a property sees, from a concrete :class:`Decision`."""
    if decision.permitted:
        provisions = sorted({d["provision"] for d in decision.determining})
    else:
        provisions = sorted({d["provision"] for d in decision.determining})
    return {
        "effect": decision.effect,
        "permitted": decision.permitted,
        "reason": decision.reason,
        "rules": dict(decision.rules),
        "provisions": provisions,
    }


__all__ = ["OUTCOMES", "TRUE", "PolicyModel", "RuleModel", "decision_view"]
