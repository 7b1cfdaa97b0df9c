"""The compiled :class:`Policy` and the :class:`Decision` it returns."""

from __future__ import annotations

import datetime as _dt
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import jsonschema_rs

from . import _compile, _decide, _schema
from ._compile import EvalError
from ._pack import Pack, Rule, load_pack
from ._vocabulary import Effect, Reason
from .explain._unmet import unmet_permits

_V1_VALIDATOR = jsonschema_rs.validator_for(_schema.load_schema("request.v1.json"))


class RuleOutcomes(Mapping[str, str]):
    """Every rule's outcome; rules the operation index ruled out read as ``not_applicable``.

    Only the rules a decision evaluated are stored, so its cost follows the rules that can
    apply to the request, not the size of the pack.
    """

    __slots__ = ("_evaluated", "_ids", "_known")

    def __init__(self, evaluated: dict[str, str], ids: tuple[str, ...], known: frozenset[str]) -> None:
        self._evaluated = evaluated
        self._ids = ids
        self._known = known

    def __getitem__(self, rule_id: str) -> str:
        found = self._evaluated.get(rule_id)
        if found is not None:
            return found
        if rule_id in self._known:
            return _decide.NOT_APPLICABLE
        raise KeyError(rule_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"RuleOutcomes({dict(self)!r})"


@dataclass(frozen=True)
class Decision:
    """The answer for one request.  ``effect`` is ``"permit"`` or ``"deny"``."""

    effect: str
    reason: str
    determining: tuple[dict[str, Any], ...]
    errors: tuple[dict[str, Any], ...]
    warnings: tuple[dict[str, Any], ...]
    obligations: tuple[dict[str, Any], ...]
    violations: tuple[dict[str, str], ...]
    policy: dict[str, str]
    decision_id: str
    evaluated_at: str
    duration_us: float
    rules: Mapping[str, str] = field(repr=False)
    explanation: dict[str, Any] | None = field(default=None, repr=False)
    #: For a deny: the permits of the request's operation that did not apply, with the failed
    #: conditions in plain words (:mod:`facegate.explain`).  Empty for a permit.
    unmet: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the decision, not the policy and request kept for ``remedies`` (found from here on)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_origin", "_remedies")}

    @property
    def remedies(self) -> tuple[dict[str, Any], ...]:
        """For a deny: the smallest sets of fact changes that make it a permit (``facegate.explain``).

        Computed on first use in the process that decided (an unpickled decision has none:
        call ``facegate.explain.find_remedies(policy, request)``)."""
        from .explain._remedies import remedies_of

        return remedies_of(self)

    @property
    def permitted(self) -> bool:
        return self.effect == "permit"

    @classmethod
    def _make(cls, **fields: Any) -> Self:
        """Build without the frozen dataclass's per-field ``object.__setattr__`` (the hot path)."""
        obj = object.__new__(cls)
        obj.__dict__.update(fields)
        return obj

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decision": self.effect,
            "reason": self.reason,
            "determining": [{**d, "message": dict(d["message"])} for d in self.determining],
            "errors": [dict(e) for e in self.errors],
            "warnings": [{**w, "message": dict(w["message"])} for w in self.warnings],
            "obligations": [{**o, "sources": [dict(s) for s in o.get("sources", ())]} for o in self.obligations],
            "violations": [dict(v) for v in self.violations],
            "policy": dict(self.policy),
            "decision_id": self.decision_id,
            "evaluated_at": self.evaluated_at,
            "rules": dict(self.rules),
            "unmet": [{**u, "failed": [dict(f) for f in u["failed"]], "excepted_by": [dict(e) for e in u["excepted_by"]]} for u in self.unmet],
        }
        if self.explanation is not None:
            out["explanation"] = self.explanation
        return out


def _ref(rule: Rule) -> dict[str, Any]:
    return {
        "rule": rule.id,
        "provision": rule.provision,
        "article": rule.article,
        "article_verified": rule.article_verified,
        "message": dict(rule.messages) if rule.messages else {"en": rule.message_en, "zh": rule.message_zh},
        **({"grade": rule.text["grade"]} if rule.text.get("grade") else {}),  # the evidence behind the text
    }


class Policy:
    """A loaded, validated and compiled policy pack.  Immutable and safe to share across threads."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self.id: str = pack.meta["id"]
        self.version: str = pack.meta["version"]
        self.revision: str = pack.revision
        self._ident = {"id": self.id, "version": self.version, "revision": self.revision}
        self._activation = _compile.activation_factory({"params": pack.parameters}, pack.backend)
        self._rules = pack.rules
        self.request_schema: dict[str, Any] = pack.request_schema
        self._checker = _RequestChecker(pack.request_schema)
        self.operations: tuple[str, ...] = tuple(pack.request_schema["properties"]["operation"]["enum"])
        self._by_operation = _index_by_operation(pack.rules, self.operations)
        self._rule_ids = tuple(r.id for r in pack.rules)
        self._rule_id_set = frozenset(self._rule_ids)
        self._refs = {r.id: _ref(r) for r in pack.rules}
        self._sourced = {r.id: _sourced(r) for r in pack.rules}

    def __repr__(self) -> str:
        return f"<Policy {self.id} {self.version} {len(self._rules)} rules>"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def in_force(self, day: str) -> bool:
        start = self.pack.meta.get("valid_from")
        end = self.pack.meta.get("valid_until")
        return (start is None or day >= start) and (end is None or day <= end)

    def decide(self, request: Mapping[str, Any], *, explain: bool = False, at: _dt.datetime | None = None) -> Decision:
        """Decide one request.  Never raises for a bad request: it is denied with the reasons."""
        started = time.perf_counter()
        now = at or _dt.datetime.now(_dt.UTC)
        day = now.date().isoformat()
        violations = self._checker.violations(request)
        if violations:
            return self._finish(Effect.DENY, Reason.INVALID_REQUEST, started, now, violations=violations)
        if not self.in_force(day):
            return self._finish(Effect.DENY, Reason.POLICY_NOT_IN_FORCE, started, now)
        activation = self._activation(request)
        budget = _compile.new_budget()
        outcomes: dict[str, str] = {}
        determining_deny: list[dict[str, Any]] = []
        permits: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        warnings: list[dict[str, Any]] = []
        obligations: list[dict[str, Any]] = []
        explanation: dict[str, Any] | None = {} if explain else None
        if explain:
            evaluated = self._explained(activation, budget, day, outcomes, explanation)
        else:
            candidates = self._by_operation.get(request["operation"], self._rules)
            evaluated = _fast(candidates, activation, budget, day, outcomes)
        for rule, outcome, err in evaluated:
            if outcome == _decide.ERROR:
                errors.append({"rule": rule.id, "provision": rule.provision, "mode": rule.mode, "error": err})
            if rule.mode == "audit":
                continue
            counts = _decide.TABLE[(rule.effect, outcome)]
            if rule.mode == "warn" and counts in ("deny", "attach", "permit", "none"):
                if counts != "none":
                    warnings.append(self._refer(rule, activation, budget))
                continue
            if counts == "deny":
                determining_deny.append(self._refer(rule, activation, budget))
            elif counts == "permit":
                permits.append(self._refer(rule, activation, budget))
                obligations.extend(self._sourced[rule.id])
            elif counts == "attach":
                obligations.extend(self._sourced[rule.id])
            elif counts == "warn":
                warnings.append(self._refer(rule, activation, budget))
        if explanation is not None:
            explanation = {"rules": explanation}
        if determining_deny or not permits:
            relevant = self._by_operation.get(request["operation"], self._rules)
            unmet = () if permits else unmet_permits(self, relevant, activation, budget, outcomes)
            return self._denied(Reason.FORBIDDEN if determining_deny else Reason.NO_PERMIT, request, started, now,
                                determining=determining_deny, errors=errors, warnings=warnings, rules=outcomes, unmet=unmet,
                                explanation=_blocked(explanation, relevant, outcomes))
        return self._finish(
            Effect.PERMIT, Reason.PERMITTED, started, now, determining=permits, errors=errors, warnings=warnings,
            obligations=_decide.merge_obligations(obligations), rules=outcomes, explanation=explanation,
        )

    def _explained(self, activation: Any, budget: Any, day: str, outcomes: dict[str, str],
                   explanation: dict[str, Any] | None) -> list[tuple[Rule, str, str | None]]:
        """Every rule, every condition item evaluated and kept for the explanation."""
        assert explanation is not None
        out = []
        for rule in self._rules:
            if (rule.valid_from and day < rule.valid_from) or (rule.valid_until and day > rule.valid_until):
                outcomes[rule.id] = _decide.SKIPPED
                continue
            when_vals = [c.program.run(activation, budget) for c in rule.when]
            unless_vals = [c.program.run(activation, budget) for c in rule.unless]
            outcome, err = _decide.condition_outcome(when_vals, unless_vals)
            outcomes[rule.id] = outcome
            explanation[rule.id] = _explain_rule(rule, when_vals, unless_vals, outcome)
            if outcome != _decide.NOT_APPLICABLE:
                out.append((rule, outcome, err))
        return out

    def _denied(self, reason: str, request: Mapping[str, Any], started: float, now: _dt.datetime, *,
                unmet: tuple[dict[str, Any], ...], **fields: Any) -> Decision:
        decision = self._finish(Effect.DENY, reason, started, now, **fields)
        decision.__dict__["unmet"] = unmet
        decision.__dict__["_origin"] = (self, request, now)  # for Decision.remedies, computed on demand
        return decision

    def _refer(self, rule: Rule, activation: Any, budget: Any) -> dict[str, Any]:
        """The rule's reference for a decision, with its message detail evaluated if it has one."""
        ref = dict(self._refs[rule.id])
        if rule.message_expr is not None:
            value = rule.message_expr.program.run(activation, budget)
            if isinstance(value, str):
                ref["message"] = {**ref["message"], "detail": value}
        return ref

    def _finish(self, effect: str, reason: str, started: float, now: _dt.datetime, *, determining: list[dict[str, Any]] | None = None,
                errors: list[dict[str, Any]] | None = None, warnings: list[dict[str, Any]] | None = None,
                obligations: list[dict[str, Any]] | None = None, violations: list[dict[str, str]] | None = None,
                rules: dict[str, str] | None = None, explanation: dict[str, Any] | None = None) -> Decision:
        return Decision._make(
            effect=effect,
            reason=reason,
            determining=tuple(determining or ()),
            errors=tuple(errors or ()),
            warnings=tuple(warnings or ()),
            obligations=tuple(obligations or ()),
            violations=tuple(violations or ()),
            policy=self._ident,
            decision_id=_new_id(),
            evaluated_at=now.isoformat(),
            duration_us=(time.perf_counter() - started) * 1e6,
            rules=RuleOutcomes(rules or {}, self._rule_ids, self._rule_id_set),
            explanation=explanation,
        )


_OP_EQ = re.compile(r'^\s*request\.operation\s*==\s*"([a-z_]+)"\s*$')
_OP_NE = re.compile(r'^\s*request\.operation\s*!=\s*"([a-z_]+)"\s*$')
_OP_IN = re.compile(r'^\s*request\.operation\s+in\s+\[\s*((?:"[a-z_]+"\s*,\s*)*"[a-z_]+")\s*,?\s*\]\s*$')


_V1_OPERATIONS: tuple[str, ...] = tuple(_schema.load_schema("request.v1.json")["properties"]["operation"]["enum"])


def _operations_of(rule: Rule, operations: tuple[str, ...] = _V1_OPERATIONS) -> frozenset[str] | None:
    """The operations a rule can apply to, when one of its ``when`` items says so plainly.

    Only whole ``when`` items of the form ``request.operation == "x"`` or
    ``request.operation in ["x", "y"]`` count: such an item is ``false`` for any other (valid)
    operation, and ``false`` decides a conjunction even when another item errors.
    """
    allowed: frozenset[str] | None = None
    for cond in rule.when:
        text = _unwrap(cond.expanded)
        m = _OP_EQ.match(text)
        ops = frozenset({m.group(1)}) if m else None
        if ops is None:
            m = _OP_IN.match(text)
            ops = frozenset(re.findall(r'"([a-z_]+)"', m.group(1))) if m else None
        if ops is None:
            m = _OP_NE.match(text)
            ops = frozenset(operations) - {m.group(1)} if m else None
        if ops is not None:
            allowed = ops if allowed is None else allowed & ops
    return allowed


def _unwrap(text: str) -> str:
    """Strip parentheses that enclose the whole text (inlined variables are parenthesised)."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text  # the first "(" closes before the end: not one group
        text = text[1:-1].strip()
    return text


def _index_by_operation(rules: tuple[Rule, ...], operations: tuple[str, ...]) -> dict[str, tuple[Rule, ...]]:
    """Rules per request operation, so a decision evaluates only those that can apply."""
    limits = [(rule, _operations_of(rule, operations)) for rule in rules]
    return {op: tuple(rule for rule, ops in limits if ops is None or op in ops) for op in operations}


def _fast(candidates: tuple[Rule, ...], activation: Any, budget: Any, day: str,
          outcomes: dict[str, str]) -> list[tuple[Rule, str, str | None]]:
    """The per-request path: one program per rule side, outcomes as in ``_decide.condition_outcome``."""
    out: list[tuple[Rule, str, str | None]] = []
    for rule in candidates:
        if rule.valid_from or rule.valid_until:
            if (rule.valid_from and day < rule.valid_from) or (rule.valid_until and day > rule.valid_until):
                outcomes[rule.id] = _decide.SKIPPED
                continue
        v = rule.when_all(activation, budget)
        if v is False:
            continue
        if v is True:
            if rule.unless_all is None:
                outcome, err = _decide.APPLIED, None
            else:
                u = rule.unless_all(activation, budget)
                if u is True:
                    continue
                if u is False:
                    outcome, err = _decide.APPLIED, None
                else:
                    outcome, err = _decide.ERROR, "exception (`unless`) could not be evaluated: " + _error_text(u)
        else:
            outcome, err = _decide.ERROR, _error_text(v)
        outcomes[rule.id] = outcome
        out.append((rule, outcome, err))
    return out


def _error_text(value: Any) -> str:
    message = getattr(value, "message", None)
    return message if isinstance(message, str) else f"condition returned `{type(value).__name__}`, not a bool"


def _new_id() -> str:
    """A random (version 4) UUID string; the same as ``str(uuid.uuid4())``, at half the cost."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _sourced(rule: Rule) -> list[dict[str, Any]]:
    return [{**ob, "sources": [{"rule": rule.id, "provision": rule.provision}]} for ob in rule.obligations]


def _show(value: Any) -> Any:
    return {"error": value.message} if isinstance(value, EvalError) else value


def _explain_rule(rule: Rule, when_vals: list[Any], unless_vals: list[Any], outcome: str) -> dict[str, Any]:
    return {
        "effect": rule.effect,
        "mode": rule.mode,
        "outcome": outcome,
        "when": [{"condition": c.text, "value": _show(v)} for c, v in zip(rule.when, when_vals, strict=True)],
        "unless": [{"condition": c.text, "value": _show(v)} for c, v in zip(rule.unless, unless_vals, strict=True)],
    }


def _blocked(explanation: dict[str, Any] | None, rules: tuple[Rule, ...], outcomes: dict[str, str]) -> dict[str, Any] | None:
    """For a deny: which unmet conditions kept each permit rule from applying."""
    if explanation is None:
        return None
    blocked = []
    for rule in rules:
        if rule.effect != "permit" or outcomes.get(rule.id) == _decide.APPLIED:
            continue
        entry = explanation["rules"][rule.id]
        unmet = [w["condition"] for w in entry["when"] if w["value"] is not True]
        lifted = [u["condition"] for u in entry["unless"] if u["value"] is True]
        blocked.append({"rule": rule.id, "provision": rule.provision, "outcome": outcomes.get(rule.id), "unmet": unmet, "excepted_by": lifted})
    return {**explanation, "blocked_permits": blocked}


class _RequestChecker:
    """The request contract of one policy: a fast validity test, and explained violations."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.v1 = schema is _schema.load_schema("request.v1.json")
        self.schema = schema
        self.fast = _V1_VALIDATOR if self.v1 else jsonschema_rs.validator_for(schema)
        self.explain = _schema.validator("request.v1.json") if self.v1 else _schema.validator_of(schema)

    def violations(self, request: Any) -> list[dict[str, str]]:
        if not isinstance(request, Mapping):
            return [{"pointer": "", "message": f"request must be a json object, not `{type(request).__name__}`"}]
        try:
            if self.fast.is_valid(request):
                return []
        except Exception as exc:  # values json cannot represent (datetime, numpy scalars, huge ints)
            return [{"pointer": "", "message": f"request is not plain json data: {exc}"}]
        try:
            found = [{"pointer": p, "message": m} for p, m in _schema.violations_with(self.explain, request)]
        except Exception as exc:
            found = [{"pointer": "", "message": f"request is not plain json data: {exc}"}]
        return found or [{"pointer": "", "message": "request does not match the request contract"}]


def load_policy(path: str | Path, *, backend: str = _compile.DEFAULT_BACKEND, functions: Mapping[str, Any] | None = None,
                companions: tuple[Any, ...] = ()) -> Policy:
    """Load, validate and compile a policy pack folder (or a single pack file).

    ``functions``: the CEL functions conditions may call (default: the built-in plugin's);
    a :class:`facegate.Gate` passes those of its allowed plugins.  ``companions``: the
    declarations (``Pack.declaration()``) of format-v2 packs loaded together with this one;
    their facts join the request contract, and a conflicting declaration is a load error.
    """
    return Policy(load_pack(path, backend=backend, functions=functions, companions=companions))
