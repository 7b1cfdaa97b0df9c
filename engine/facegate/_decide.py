"""Decide phase: the whole decision procedure, in one place.

A request is validated; a pack outside its validity denies everything; then every rule's
``when`` and ``unless`` values give the rule an outcome, and each outcome counts toward the
decision by this table (``COUNTS``, for the ``enforce`` mode; docs/decisions.md is the same table):

=================  ===========================  =====================================
effect             rule outcome                 counts as
=================  ===========================  =====================================
forbid             when true, unless not true   ``deny`` (forbid overrides permit)
forbid             when/unless errors           ``deny`` (fail closed), error listed
permit             when true, unless not true   ``permit`` (a permit needs at least one)
permit             errors                       ``none`` (does not apply), error listed
obligation         when true, unless not true   ``attach``: its obligations attach to a permit
obligation         errors                       ``attach`` anyway (duty kept), error listed
advice             applies or errors            ``warn``: a warning; never blocks
=================  ===========================  =====================================

Mode ``warn``: what would deny, permit or attach becomes a warning and never blocks.  Mode
``audit``: evaluated and recorded in ``rules`` only.  A rule outside its validity window is
``skipped``.  With no applicable permit the decision is deny (default deny).

How the values are computed does not change them: on the native backend each operation's rules
are one generated function (:mod:`facegate.cel._shared`: the rules that cannot apply to the
operation folded away, every shared sub-expression -- a pack variable, a ``has()`` guard --
evaluated at most once per decision); on the interpreter backend, with ``explain=True`` and for
rules with a validity window, each condition item is evaluated on its own.  Both feed
:func:`outcome` and the one combining loop below.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, cast

from . import _compile
from ._compile import EvalError
from ._decision import Decision, RuleOutcomes, Trace
from ._details import Details
from ._forms import SharedForm, shallow_copier
from ._vocabulary import Effect, Reason, RuleOutcome
from .cel import Budget as _Budget

APPLIED, NOT_APPLICABLE, ERROR, SKIPPED = RuleOutcome.APPLIED, RuleOutcome.NOT_APPLICABLE, RuleOutcome.ERROR, RuleOutcome.SKIPPED

#: How each rule outcome of each effect counts toward the decision, for ``enforce`` mode.
TABLE: dict[tuple[str, str], str] = {
    ("forbid", APPLIED): "deny",
    ("forbid", ERROR): "deny",
    ("permit", APPLIED): "permit",
    ("permit", ERROR): "none",
    ("obligation", APPLIED): "attach",
    ("obligation", ERROR): "attach",
    ("advice", APPLIED): "warn",
    ("advice", ERROR): "warn",
}
MODES = ("enforce", "warn", "audit")
_MERGED_KEPT = 4096  # tallies kept, by the set of rules that applied (requests choose them)
_NOT_YET: Any = object()
_EXPLAIN: dict[str, Callable[..., Any]] = {}  # the unmet-permit report, imported on first use


def counts(effect: str, mode: str, outcome: str) -> str:
    """What a rule outcome counts as in its mode: the table, then ``warn`` and ``audit`` mode."""
    counted = TABLE[(effect, outcome)]
    if mode == "audit":
        return "record"
    if mode == "warn" and counted in ("deny", "attach", "permit"):
        return "warn"
    return counted


#: The table for every effect, mode and outcome, looked up once per rule at load time.
COUNTS: dict[tuple[str, str, str], str] = {
    (effect, mode, outcome): counts(effect, mode, outcome) for (effect, outcome) in TABLE for mode in MODES
}


def outcome(when: Any, unless: Any) -> tuple[str, str | None]:
    """A rule's outcome from the value of its ``when`` conjunction and of its ``unless``
    conjunction (``None``: no exceptions, or not evaluated because ``when`` is not true)."""
    if when is False:
        return NOT_APPLICABLE, None
    if when is not True:
        return ERROR, _error_text(when)
    if unless is None or unless is False:
        return APPLIED, None
    if unless is True:
        return NOT_APPLICABLE, None
    return ERROR, "exception (`unless`) could not be evaluated: " + _error_text(unless)


def condition_outcome(when_values: Iterable[Any], unless_values: Iterable[Any]) -> tuple[str, str | None]:
    """The outcome from the values of each condition item (the explained path).

    ``when`` items are a conjunction: any ``false`` makes the rule not applicable even if another
    item errored (CEL's ``&&`` absorbs errors the same way).  ``unless`` items are a conjunction
    too; an ``unless`` that errors or is not a bool does not lift the rule (fail closed for forbids;
    for permits the error makes the permit not apply).
    """
    error: str | None = None
    for v in when_values:
        if v is False:
            return NOT_APPLICABLE, None
        if isinstance(v, EvalError):
            error = error or v.message
        elif v is not True:
            error = error or f"condition returned `{type(v).__name__}`, not a bool"
    if error is not None:
        return ERROR, error
    unless = list(unless_values)
    if not unless:
        return APPLIED, None
    u_error: str | None = None
    for v in unless:
        if v is False:
            return APPLIED, None
        if isinstance(v, EvalError):
            u_error = u_error or v.message
        elif v is not True:
            u_error = u_error or f"exception returned `{type(v).__name__}`, not a bool"
    if u_error is not None:
        return ERROR, "exception (`unless`) could not be evaluated: " + u_error
    return NOT_APPLICABLE, None


def _error_text(value: Any) -> str:
    message = getattr(value, "message", None)
    return message if isinstance(message, str) else f"condition returned `{type(value).__name__}`, not a bool"


def merge_obligations(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge typed obligations: one per type; ``retention_max_days`` keeps the strictest."""
    merged: dict[str, dict[str, Any]] = {}
    for ob in items:
        kind = ob["type"]
        if kind in merged:
            cur = merged[kind]
            if kind == "retention_max_days":
                cur["days"] = min(cur["days"], ob["days"])
            for src in ob.get("sources", []):
                if src not in cur["sources"]:
                    cur["sources"].append(src)
        else:
            merged[kind] = {**ob, "sources": list(ob.get("sources", []))}
    return [merged[k] for k in sorted(merged)]


class Overruled(dict[str, str]):
    """The rule outcomes of a deny in which an enforced permit applied (a forbid overruled it):
    such a deny has no unmet permit.  Told apart by its type, which costs no lookup by ``id()`` --
    an audited builtin, slow whenever an audit hook is installed (the in-process gate's guard is one)."""

    __slots__ = ()


class Tally(NamedTuple):
    """What the combining loop found for one decision (kept and shared when only bools were seen)."""

    effect: Effect
    outcomes: dict[str, str]  # the evaluated rules' outcomes (read-only once made)
    determining: tuple[int, ...]  # rule indices: the denying rules of a deny, the permits of a permit
    warnings: tuple[int, ...]
    detailed: bool  # a determining or warning rule has a message detail, evaluated per decision
    determining_refs: tuple[dict[str, Any], ...]  # their prepared references (copied per decision)
    warning_refs: tuple[dict[str, Any], ...]
    obligations: tuple[dict[str, Any], ...]  # a permit's merged obligations (copied per decision)
    base: dict[str, Any]  # the Decision fields its decisions share: effect, reason, errors, policy, rule outcomes
    #: its decisions' own (determining, warnings, obligations): a kept tally's is generated
    #: (``shallow_copier``; the first two empty when ``detailed``, those are evaluated per decision)
    copies: Callable[[], tuple[tuple[dict[str, Any], ...], ...]]


class Procedure:
    """One pack's rules made ready to decide: built once, shared by every decision (and thread)."""

    def __init__(self, policy: Any, violations: Callable[[Any], list[dict[str, str]]],
                 valid: Callable[[Any], bool] | None = None) -> None:
        pack = policy.pack
        self.policy = policy
        self.violations = violations  # a request's violations of the request contract, explained
        self.accepts = valid or (lambda request: not violations(request))  # the fast yes/no test (may raise)
        self.rules = pack.rules
        self.params = pack.parameters
        self.ident = {"id": policy.id, "version": policy.version, "revision": policy.revision}
        self.ids = tuple(r.id for r in pack.rules)
        self.template = dict.fromkeys(self.ids, NOT_APPLICABLE)
        # per rule index: its reference (message and provenance) and obligations, built now
        self.refs = tuple(_ref(r) for r in pack.rules)
        self.details = tuple(r.message_expr is not None for r in pack.rules)  # a message detail is evaluated per decision
        self.message_details = Details(pack.rules)
        self.sourced = tuple(tuple({**ob, "sources": [{"rule": r.id, "provision": r.provision}]} for ob in r.obligations) for r in pack.rules)
        self._tallies: dict[tuple[int, ...], Tally] = {}  # the rules that applied -> their tally (see tally_of)
        self.on_applied = tuple(COUNTS[(r.effect, r.mode, APPLIED)] for r in pack.rules)
        self.on_error = tuple(COUNTS[(r.effect, r.mode, ERROR)] for r in pack.rules)
        self.windowed = tuple(i for i, r in enumerate(pack.rules) if r.valid_from or r.valid_until)
        self.valid = (pack.meta.get("valid_from"), pack.meta.get("valid_until"))
        self.dated = bool(self.windowed) or self.valid != (None, None)
        self.compiled = pack.backend == _compile.DEFAULT_BACKEND and getattr(pack, "functions", None) is not None
        self._sets: dict[str, Any] = {}  # operation -> its compiled rule set (RuleSet)
        self._runs: dict[str, Any] = {}  # operation -> the rule set's function (optimistic, falling back to exact)
        self._fast: dict[str, Any] = {}  # operation -> the optimistic function alone, or None
        self._exact: dict[str, Any] = {}  # operation -> the exact function
        self._by_values: dict[tuple[tuple[int, Any, Any], ...], Tally] = {}  # the optimistic function's values -> their tally
        self._candidates: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._day: tuple[float, float, str, bool] = (0.0, 0.0, "", False)

    # -- the procedure ---------------------------------------------------------------

    def decide(self, request: Any, explain: bool, at: _dt.datetime | None) -> Decision:
        started = time.perf_counter()
        trace = Trace(self.policy, None, None, at, time.time())
        try:  # the common case first: a plain dict the request contract accepts
            valid = type(request) is dict and self.accepts(request)
        except Exception:  # values JSON cannot represent: violations() says which
            valid = False
        if not valid:
            violations = self.violations(request)
            if violations:
                return self.finish(Effect.DENY, Reason.INVALID_REQUEST, started, trace, violations=tuple(violations))
        day = ""
        if self.dated:
            start, end, day, in_force = self._day  # today's, kept (see today())
            if at is not None or not start <= trace.clock < end:
                day, in_force = self.today(trace)
            if not in_force:
                return self.finish(Effect.DENY, Reason.POLICY_NOT_IN_FORCE, started, trace)
        activation = trace.activation = {"params": self.params, "request": request}
        budget = _Budget(_compile.DECISION_BUDGET)
        explanation: dict[str, Any] | None = None
        if explain or not self.compiled:
            explanation = {} if explain else None
            tally = self.tally_of(self.each_item(range(len(self.rules)), activation, budget, day, explanation))
        else:
            tally = self.compiled_tally(request["operation"], activation, budget, day)
        trace.outcomes = tally.outcomes
        determining, warnings, obligations = tally.copies()
        if tally.detailed:  # a message detail is evaluated for this request
            determining, warnings = self.referred(tally.determining, activation, budget), self.referred(tally.warnings, activation, budget)
        if explanation is not None:
            explanation = {"rules": explanation}
            if tally.effect is Effect.DENY:
                explanation = self.blocked(explanation, tally.outcomes, request)
        decision = Decision._with(tally.base, determining, warnings, obligations, trace, (time.perf_counter() - started) * 1e6)
        if explanation is not None:
            decision.__dict__["explanation"] = explanation
        if tally.effect is Effect.DENY:
            decision.__dict__["_origin"] = (self.policy, request, at)  # for Decision.remedies (facegate.explain)
        return decision

    def rebuilt(self, applied: tuple[int, ...], request: Any, clock: float, duration_us: float,
                refs: tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]] | None) -> Decision:
        """A decision another process made with the same policy, from what names its kept tally (the
        rules that applied), built as :meth:`decide` builds one; ``refs``: its own determining and
        warning references when they carry a message detail (:mod:`facegate._pool_codec`)."""
        tally = self._tallies.get(applied) or self.tally_of([(i, True, None) for i in applied])
        determining, warnings, obligations = tally.copies()
        if refs is not None:
            determining, warnings = refs
        deny = tally.effect is Effect.DENY
        trace = Trace(self.policy, {"params": self.params, "request": request} if deny else None, tally.outcomes, None, clock)
        decision = Decision._with(tally.base, determining, warnings, obligations, trace, duration_us)
        if deny:
            decision.__dict__["_origin"] = (self.policy, request, None)  # for Decision.remedies
        return decision

    def compiled_tally(self, operation: str, activation: Any, budget: Any, day: str) -> Tally:
        """The tally from the operation's generated function: the optimistic one (``decide``
        validated the request), and the exact one from scratch if it gives up."""
        fast = self._fast.get(operation, _NOT_YET)
        if fast is _NOT_YET:
            self.rule_set(operation)
            fast = self._fast[operation]
        if fast is None:  # no optimistic function, or rules with a validity window decided apart
            results = self.rule_set(operation)(activation, budget)
            if self.windowed:
                results = self.with_windows(results, activation, budget, day)
            return self.tally_of(results)
        steps = budget.steps
        try:
            results = fast(activation, budget)
        except Exception:  # noqa: BLE001 - anything it cannot vouch for: the exact function decides
            budget.steps = steps  # what a comprehension charged before it gave up
            return self.tally_of(self._exact[operation](activation, budget))
        key = tuple(results)  # its values are only ever True, False or None: they key the tally as they are
        found = self._by_values.get(key)
        if found is None:
            found = self.tally_of(results)
            if len(self._by_values) < _MERGED_KEPT:
                self._by_values[key] = found
        return found

    def tally_of(self, results: list[tuple[int, Any, Any]]) -> Tally:
        """The tally of these rule values: when every rule plainly applied or plainly did not
        (bools only: no error, no skipped rule), it depends only on which rules applied, so it is
        counted once per such set of rules and kept; otherwise it is counted afresh."""
        applied = []
        for index, when, unless in results:
            if when is True:
                if unless is None or unless is False:
                    applied.append(index)
                    continue
                if unless is True:
                    continue
            elif when is False:
                continue
            return self.tally(results)  # an error or a skipped rule: its text is this request's
        key = tuple(applied)
        found = self._tallies.get(key)
        if found is None:
            found = self.tally([(index, True, None) for index in key])
            kept = len(self._tallies) < _MERGED_KEPT
            if kept:  # generated once for the tally's many decisions (never per decision: a full store generates nothing)
                found = found._replace(copies=shallow_copier(((), (), found.obligations) if found.detailed
                                                             else (found.determining_refs, found.warning_refs, found.obligations)))
            # its decisions' shared parts as one generated function (to_dict adds a message's detail), made on first use
            found.base["_applied"] = key  # names the tally across processes (facegate._pool_codec)
            found.base["_form"] = SharedForm(found.determining_refs, found.warning_refs, found.obligations, found.base["errors"], self.ident,
                                             found.detailed)
            if kept:
                self._tallies[key] = found
        return found

    def tally(self, results: list[tuple[int, Any, Any]]) -> Tally:
        """The combining loop: each rule's outcome (:func:`outcome`) counted as ``COUNTS`` says."""
        outcomes: dict[str, str] = {}
        deny: list[int] = []
        permits: list[int] = []
        errors: list[dict[str, Any]] = []
        warnings: list[int] = []
        attached: list[int] = []  # the rules whose obligations attach, in pack order
        ids = self.ids
        overruled = False  # an enforced permit applied: if a forbid decides, it overrules the permit
        for index, when, unless in results:
            if when is SKIPPED:
                outcomes[ids[index]] = SKIPPED
                continue
            result, error = outcome(when, unless)
            if result is NOT_APPLICABLE:
                continue
            outcomes[ids[index]] = result
            if result is ERROR:
                rule = self.rules[index]
                errors.append({"rule": rule.id, "provision": rule.provision, "mode": rule.mode, "error": error})
                counted = self.on_error[index]
            else:
                counted = self.on_applied[index]
            if counted == "deny":
                deny.append(index)
            elif counted == "permit":
                permits.append(index)
                attached.append(index)
                overruled = overruled or result is APPLIED
            elif counted == "attach":
                attached.append(index)
            elif counted == "warn":
                warnings.append(index)
        if deny or not permits:  # forbid overrides permit; no permit is a deny (default deny)
            effect, reason, determining, attached = Effect.DENY, Reason.FORBIDDEN if deny else Reason.NO_PERMIT, deny, []
            if overruled:
                outcomes = Overruled(outcomes)
        else:
            effect, reason, determining = Effect.PERMIT, Reason.PERMITTED, permits
        details, refs = self.details, self.refs
        rule_outcomes = RuleOutcomes(outcomes, self.ids, cast("dict[str, str]", self.template))
        base = {"effect": effect, "reason": reason, "errors": tuple(errors), "violations": (), "policy": self.ident,
                "explanation": None, "_outcomes": rule_outcomes}  # the fields its decisions share
        determining_refs, warning_refs, obligations = tuple(refs[i] for i in determining), tuple(refs[i] for i in warnings), self.merged(tuple(attached))
        return Tally(effect, outcomes, tuple(determining), tuple(warnings), any(details[i] for i in (*determining, *warnings)),
                     determining_refs, warning_refs, obligations, base, _copying((determining_refs, warning_refs, obligations)))

    def referred(self, indices: tuple[int, ...], activation: Any, budget: Any) -> tuple[dict[str, Any], ...]:
        """The rules' references for one decision, each rule's message detail evaluated if it has one."""
        if len(indices) == 1:  # the usual case, without a list
            return (self.refer(indices[0], activation, budget),)
        return tuple([self.refer(i, activation, budget) for i in indices])

    def merged(self, attached: tuple[int, ...]) -> tuple[dict[str, Any], ...]:
        """The merged obligations of these rules, their sources a tuple (shared by the decisions with
        these rules: each decision gets its own copy of each obligation, ``dict(ob)``)."""
        return tuple({**ob, "sources": tuple(ob["sources"])} for ob in merge_obligations(ob for i in attached for ob in self.sourced[i]))

    def finish(self, effect: str, reason: str, started: float, trace: Trace, *, determining: tuple[dict[str, Any], ...] = (),
               errors: tuple[dict[str, Any], ...] = (), warnings: tuple[dict[str, Any], ...] = (),
               obligations: tuple[dict[str, Any], ...] = (), violations: tuple[dict[str, str], ...] = (),
               explanation: dict[str, Any] | None = None, outcomes: RuleOutcomes | None = None) -> Decision:
        return Decision._make(
            effect=effect, reason=reason, determining=determining, errors=errors, warnings=warnings,
            obligations=obligations, violations=violations, policy=self.ident, explanation=explanation,
            _trace=trace, _outcomes=outcomes if outcomes is not None else RuleOutcomes({}, self.ids, cast("dict[str, str]", self.template)),
            duration_us=(time.perf_counter() - started) * 1e6,
        )

    def unreadable(self, why: str) -> Decision:
        """The deny for a request that could not be read (``why``: "is not valid JSON: ..."): an invalid request."""
        started = time.perf_counter()
        return self.finish(Effect.DENY, Reason.INVALID_REQUEST, started, Trace(self.policy, None, None, None, time.time()),
                           violations=({"pointer": "", "message": f"request {why}"},))

    def refer(self, index: int, activation: Any, budget: Any) -> dict[str, Any]:
        """The rule's reference for a decision, with its message detail evaluated if it has one."""
        ref = {**self.refs[index]}
        if self.details[index]:
            value = self.message_details.detail(index, activation, budget)
            if value is not None:
                ref["message"] = {**ref["message"], "detail": value}
        return ref

    # -- when: the validity windows ------------------------------------------------------

    def today(self, trace: Trace) -> tuple[str, bool]:
        """The decision's day (UTC) and whether the pack is in force on it; the current day's are
        kept until midnight."""
        if trace.at is not None:
            day = trace.at.date().isoformat()
            return day, self.in_force(day)
        midnight = _dt.datetime.fromtimestamp(trace.clock, _dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = midnight.timestamp()
        day = midnight.date().isoformat()
        in_force = self.in_force(day)
        self._day = (start, start + 86400.0, day, in_force)  # one tuple: threads see an old day or the new one
        return day, in_force

    def in_force(self, day: str) -> bool:
        start, end = self.valid
        return (start is None or day >= start) and (end is None or day <= end)

    def skipped(self, index: int, day: str) -> bool:
        rule = self.rules[index]
        return bool((rule.valid_from and day < rule.valid_from) or (rule.valid_until and day > rule.valid_until))

    # -- the values: compiled per operation, or item by item ---------------------------------

    def prepare(self) -> None:
        """Compile every operation's function now (before forking workers, or to time a load)."""
        if self.compiled:
            for operation in self.policy.operations:
                self.rule_set(operation)

    def candidates(self, operation: str) -> tuple[Any, ...]:
        """The rules that can apply to a request of this operation, in pack order: those whose
        ``when`` does not fold to false once the operation is known (from the checked trees)."""
        found = self._candidates.get(operation)
        if found is None:
            from .cel._shared import can_apply

            known: dict[tuple[str, ...], Any] = {("request", "operation"): operation}
            found = self._candidates[operation] = tuple(
                r for r in self.rules
                if can_apply([c.program.program.tree for c in r.when], [c.program.program.checked for c in r.when], known))
        return found

    def unmet(self, trace: Trace) -> tuple[dict[str, Any], ...]:
        """For a deny decided by the rules: the permits of its operation that did not apply, and why
        (:mod:`facegate.explain`; on demand, with a fresh budget)."""
        if type(trace.outcomes) is Overruled:  # what unmet_permits would find first: no permit is unmet
            return ()
        report = _EXPLAIN.get("unmet_permits")
        if report is None:  # imported on the first deny read (deciding alone does not need it), then kept
            from .explain._unmet import unmet_permits

            report = _EXPLAIN["unmet_permits"] = unmet_permits
        request = trace.activation["request"]
        relevant = self.candidates(request["operation"])
        return report(self.policy, relevant, trace.activation, None, trace.outcomes, validated=True)  # a fresh budget if needed

    def rule_set(self, operation: str) -> Callable[[Any, Any], list[tuple[int, Any, Any]]]:
        """The generated function of the operation's rules (compiled on first use, then kept)."""
        found = self._runs.get(operation)
        if found is None:
            with self._lock:
                found = self._runs.get(operation)
                if found is None:
                    self._sets[operation] = compiled = self.compile(operation)
                    self._exact[operation] = compiled.run
                    # decide() runs the optimistic function itself (it validated the request first);
                    # with a validity window some rules are decided apart (with_windows): not there
                    self._fast[operation] = compiled.fast if not self.windowed else None
                    found = self._runs[operation] = compiled.fast_run
        return found  # type: ignore[no-any-return]

    def applicable(self, operation: str) -> int:
        """How many rules can apply to a request of this operation (the others fold to false)."""
        self.rule_set(operation)
        return len(self._sets[operation].kept) + len(self.windowed)

    def compile(self, operation: str) -> Any:
        from .cel._shared import Side, compile_rule_set

        def side(conditions: tuple[Any, ...]) -> Side | None:
            programs = [c.program.program for c in conditions]
            return Side(tuple(p.tree for p in programs), tuple(p.checked for p in programs)) if programs else None

        windowed = set(self.windowed)
        rules = [(side(r.when), side(r.unless)) if i not in windowed else (_never(), None) for i, r in enumerate(self.rules)]
        return compile_rule_set(rules, self.policy.pack.functions, {("request", "operation"): operation},  # type: ignore[arg-type]
                                validated={"request": self.policy.request_schema})

    def with_windows(self, results: list[tuple[int, Any, Any]], activation: Any, budget: Any, day: str) -> list[tuple[int, Any, Any]]:
        """Rules with a validity window are left out of the generated functions: decided here."""
        extra = self.each_item(self.windowed, activation, budget, day, None)
        return sorted([*results, *extra], key=lambda r: r[0])

    def each_item(self, indices: Iterable[int], activation: Any, budget: Any, day: str,
                  explanation: dict[str, Any] | None) -> list[tuple[int, Any, Any]]:
        """Every condition item of the given rules evaluated on its own (``(index, when, unless)``
        with the items' conjunction values; ``SKIPPED`` for a rule outside its window)."""
        out: list[tuple[int, Any, Any]] = []
        for index in indices:
            rule = self.rules[index]
            if (rule.valid_from or rule.valid_until) and self.skipped(index, day):
                out.append((index, SKIPPED, None))
                continue
            when_vals = [c.program.run(activation, budget) for c in rule.when]
            unless_vals = [c.program.run(activation, budget) for c in rule.unless]
            result, error = condition_outcome(when_vals, unless_vals)
            if explanation is not None:
                explanation[rule.id] = _explain_rule(rule, when_vals, unless_vals, result)
            out.append((index, *_as_values(result, error)))
        return out

    def blocked(self, explanation: dict[str, Any] | None, outcomes: Mapping[str, str], request: Any) -> dict[str, Any] | None:
        """For a deny: which unmet conditions kept each permit rule of the operation from applying."""
        if explanation is None:
            return None
        found = []
        for rule in self.candidates(request["operation"]):
            if rule.effect != "permit" or outcomes.get(rule.id) == APPLIED:
                continue
            entry = explanation["rules"].get(rule.id)
            if entry is None:  # not in force on the day (skipped): its conditions were not evaluated
                unmet, lifted = ["valid_from/valid_until"], []
            else:
                unmet = [w["condition"] for w in entry["when"] if w["value"] is not True]
                lifted = [u["condition"] for u in entry["unless"] if u["value"] is True]
            found.append({"rule": rule.id, "provision": rule.provision, "outcome": outcomes.get(rule.id, NOT_APPLICABLE),
                          "unmet": unmet, "excepted_by": lifted})
        return {**explanation, "blocked_permits": found}


def _copying(groups: tuple[tuple[dict[str, Any], ...], ...]) -> Callable[[], tuple[tuple[dict[str, Any], ...], ...]]:
    """A tally's copier before it is kept (or when it is not): ``dict(d)`` of each, no code generated."""
    return lambda: tuple(tuple(map(dict, group)) if group else () for group in groups)


def _never() -> Any:
    """A ``when`` side that is ``false``: its rule is decided elsewhere (see ``with_windows``)."""
    from .cel import _ast
    from .cel._check import Checked
    from .cel._shared import Side

    return Side((_ast.Lit(False, 0, 0),), (Checked(),))


def _as_values(result: str, error: str | None) -> tuple[Any, Any]:
    """Conjunction values that :func:`outcome` maps back to ``result`` and ``error``."""
    if result == APPLIED:
        return True, None
    if result == NOT_APPLICABLE:
        return False, None
    return EvalError(error or ""), None


def _ref(rule: Any) -> dict[str, Any]:
    return {
        "rule": rule.id,
        "provision": rule.provision,
        "article": rule.article,
        "article_verified": rule.article_verified,
        "message": dict(rule.messages) if rule.messages else {"en": rule.message_en, "zh": rule.message_zh},
        **({"grade": rule.text["grade"]} if rule.text.get("grade") else {}),  # the evidence behind the text
    }


def _show(value: Any) -> Any:
    return {"error": value.message} if isinstance(value, EvalError) else value


def _explain_rule(rule: Any, when_vals: list[Any], unless_vals: list[Any], result: str) -> dict[str, Any]:
    return {
        "effect": rule.effect,
        "mode": rule.mode,
        "outcome": result,
        "when": [{"condition": c.text, "value": _show(v)} for c, v in zip(rule.when, when_vals, strict=True)],
        "unless": [{"condition": c.text, "value": _show(v)} for c, v in zip(rule.unless, unless_vals, strict=True)],
    }
