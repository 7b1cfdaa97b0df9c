"""The :class:`Decision` a policy returns: what is needed to act built at once, the rest on demand.

A decision's effect, reason, determining rules, errors, warnings, obligations and violations are
built while deciding (the gate and every caller read them).  What is read rarely -- the decision
id, the timestamp, the per-rule outcome map, the dict and JSON forms -- is computed the first
time it is read, from what the decision procedure left behind (:class:`Trace`), and then fixed:
reading ``decision_id`` twice, from any thread, gives the same id.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._stamps import new_id, utc_iso

NOT_APPLICABLE = "not_applicable"


class RuleOutcomes(Mapping[str, str]):
    """Every rule's outcome; rules the index ruled out read as ``not_applicable``.

    Only the rules a decision evaluated are stored, so its cost follows the rules that can
    apply to the request, not the size of the pack.
    """

    __slots__ = ("_evaluated", "_full", "_ids", "_json", "_template")

    def __init__(self, evaluated: dict[str, str], ids: tuple[str, ...], template: dict[str, str]) -> None:
        self._evaluated = evaluated
        self._ids = ids
        self._template = template  # every rule id -> not_applicable, shared by the policy's decisions
        self._json: Any = None  # the map as JSON, encoded once (one RuleOutcomes serves every decision of a tally)
        self._full: dict[str, str] | None = None  # every rule's outcome, merged once; as_dict() copies it

    def __getitem__(self, rule_id: str) -> str:
        found = self._evaluated.get(rule_id)
        if found is not None:
            return found
        return self._template[rule_id]  # KeyError for an unknown rule, as a dict would

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def as_dict(self) -> dict[str, str]:
        """A new plain dict, in rule order: a copy of the map merged on first use (the decisions that
        share this object share that merge; each gets its own copy)."""
        full = self._full
        if full is None:
            full = self._template.copy()
            full.update(self._evaluated)
            self._full = full  # one assignment: a thread sees None (and merges too) or the whole map
        return full.copy()

    def as_json(self) -> Any:
        """The map as pre-encoded JSON (an ``orjson.Fragment``), encoded on first use and kept:
        the decisions that share this object (the same rules applied) share its encoding."""
        found = self._json
        if found is None:
            _dumps(None)  # imports orjson on first use
            found = self._json = _ORJSON["fragment"](_dumps(self.as_dict()))
        return found

    def __repr__(self) -> str:
        return f"RuleOutcomes({self.as_dict()!r})"


class Trace:
    """What one decision's procedure leaves behind for the fields computed on demand.

    ``policy`` is the :class:`facegate.Policy`, ``activation`` the CEL activation (the request
    under ``request``), ``outcomes`` the evaluated rules' outcomes, ``at`` the time given to
    ``decide`` (or ``None``) and ``clock`` the ``time.time()`` of the decision.  An explanation
    module reads it to say, for a deny, why each permit did not apply.  ``fixed`` holds the
    fields computed on demand, so a copy of the decision (``dataclasses.replace``) keeps its id.
    """

    __slots__ = ("activation", "at", "clock", "fixed", "outcomes", "policy")

    def __init__(self, policy: Any, activation: Any, outcomes: dict[str, str] | None, at: _dt.datetime | None, clock: float) -> None:
        self.policy = policy
        self.activation = activation
        self.outcomes = outcomes
        self.at = at
        self.clock = clock
        self.fixed: dict[str, Any] = {}


@dataclass(frozen=True, eq=False)
class Decision:
    """The answer for one request.  ``effect`` is ``"permit"`` or ``"deny"``.

    ``decision_id`` (a random UUID), ``evaluated_at`` (ISO 8601, UTC) and ``rules`` (every
    rule's outcome) are computed when first read; ``to_dict()`` and ``to_json()`` build the
    serialised forms.
    """

    effect: str
    reason: str
    determining: tuple[dict[str, Any], ...]
    errors: tuple[dict[str, Any], ...]
    warnings: tuple[dict[str, Any], ...]
    obligations: tuple[dict[str, Any], ...]
    violations: tuple[dict[str, str], ...]
    policy: dict[str, str]
    duration_us: float
    explanation: dict[str, Any] | None = field(default=None, repr=False)
    _trace: Trace = field(default_factory=lambda: Trace(None, None, None, None, 0.0), repr=False)
    _outcomes: RuleOutcomes | None = field(default=None, repr=False)

    @classmethod
    def _make(cls, **fields: Any) -> Decision:
        """Build without the frozen dataclass's per-field ``object.__setattr__`` (the hot path)."""
        obj = object.__new__(cls)
        obj.__dict__.update(fields)
        return obj

    @classmethod
    def _with(cls, base: dict[str, Any], determining: tuple[dict[str, Any], ...], warnings: tuple[dict[str, Any], ...],
              obligations: tuple[dict[str, Any], ...], trace: Trace, duration_us: float) -> Decision:
        """``_make`` from ``base`` (the fields every decision of one tally shares) and the fields
        that are the decision's own."""
        obj = object.__new__(cls)
        fields = obj.__dict__
        fields.update(base)
        fields["determining"] = determining
        fields["warnings"] = warnings
        fields["obligations"] = obligations
        fields["_trace"] = trace
        fields["duration_us"] = duration_us
        return obj

    @property
    def permitted(self) -> bool:
        return self.effect == "permit"

    @property
    def decision_id(self) -> str:
        return _id_of(self._trace)

    @property
    def evaluated_at(self) -> str:
        return _time_of(self._trace)

    @property
    def unmet(self) -> tuple[dict[str, Any], ...]:
        """For a deny: the permits of the request's operation that did not apply, with the failed
        conditions in plain words (:mod:`facegate.explain`).  Empty for a permit.  Computed when
        first read (the gate's record, ``to_dict()`` and ``facegate decide`` read it), from what
        the decision procedure left behind."""
        trace = self._trace
        found = trace.fixed.get("unmet")
        if found is None:
            found = trace.fixed.setdefault("unmet", _unmet_of(self, trace))
        return found  # type: ignore[no-any-return]

    @property
    def remedies(self) -> tuple[dict[str, Any], ...]:
        """For a deny: the smallest sets of fact changes that make it a permit (``facegate.explain``).

        Computed on first use in the process that decided (an unpickled decision has none:
        call ``facegate.explain.find_remedies(policy, request)``)."""
        from .explain._remedies import remedies_of

        return remedies_of(self)

    @property
    def rules(self) -> RuleOutcomes:
        outcomes = self._outcomes
        if outcomes is None:
            outcomes = RuleOutcomes({}, (), {})
        return outcomes

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled (to cross a process boundary) with its id, time and outcomes fixed; the
        trace stays behind."""
        fields = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return _restore, (type(self), fields, self.decision_id, self.evaluated_at, self.rules.as_dict(), self.unmet)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict; nothing in it is shared with the policy or other decisions.

        The parts a decision shares with the others of its tally (the same rules applied) come
        from that tally's generated form (:mod:`facegate._forms`), when it has one."""
        fields = self.__dict__  # read once: to_dict is on the hot path of every recorded decision
        form = fields.get("_form")
        shared = form.build() if form is not None else None
        if shared is None:
            shared = self._copies()
        elif form is not None and form.detailed:  # the form has the rules' messages as written; a message detail is this decision's own
            _add_details(shared[0], fields["determining"])
            if fields["warnings"]:
                _add_details(shared[1], fields["warnings"])
        determining, warnings, obligations, errors, policy = shared
        trace, effect, violations, outcomes = fields["_trace"], fields["effect"], fields["violations"], fields["_outcomes"]
        made: list[dict[str, Any]] = []
        if effect == "deny":
            unmet = trace.fixed.get("unmet")
            if unmet is None:  # not read yet: a report of this dict's own, fresh as the report always is (not kept)
                made = list(_unmet_of(self, trace))
            elif unmet:
                made = [{**u, "failed": [{**f} for f in u["failed"]], "excepted_by": [{**e} for e in u["excepted_by"]]} for u in unmet]
        out: dict[str, Any] = {
            "decision": effect,
            "reason": fields["reason"],
            "determining": determining,
            "errors": errors,
            "warnings": warnings,
            "obligations": obligations,
            "violations": [{**v} for v in violations] if violations else [],
            "policy": policy,
            "decision_id": _id_of(trace),
            "evaluated_at": _time_of(trace),
            "rules": outcomes.as_dict() if outcomes is not None else {},
            "unmet": made,
        }
        explanation = fields["explanation"]
        if explanation is not None:
            out["explanation"] = explanation
        return out

    def _copies(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """The shared parts copied to any depth (a reference's ``grade`` is an object too)."""
        return (_fresh(self.determining), _fresh(self.warnings), _fresh(self.obligations), _fresh(self.errors), _fresh(self.policy))

    def to_json(self) -> bytes:
        """The decision as UTF-8 JSON bytes, the same document as ``to_dict()`` (orjson)."""
        out: dict[str, Any] = {
            "decision": self.effect,
            "reason": self.reason,
            "determining": self.determining,
            "errors": self.errors,
            "warnings": self.warnings,
            "obligations": self.obligations,
            "violations": self.violations,
            "policy": self.policy,
            "decision_id": _id_of(self._trace),
            "evaluated_at": _time_of(self._trace),
            "rules": self.rules.as_json(),
            "unmet": self.unmet,
        }
        if self.explanation is not None:
            out["explanation"] = self.explanation
        return _dumps(out)


def _id_of(trace: Trace) -> str:
    """The decision's id, drawn on first read and then fixed (``setdefault`` is atomic: two
    threads reading at once get one id)."""
    fixed = trace.fixed
    found = fixed.get("decision_id")
    if found is None:
        found = fixed.setdefault("decision_id", new_id())
    return found  # type: ignore[no-any-return]


def _time_of(trace: Trace) -> str:
    """The decision's ISO 8601 time: the ``at`` given to ``decide``, else the clock it read."""
    fixed = trace.fixed
    found = fixed.get("evaluated_at")
    if found is None:
        found = fixed.setdefault("evaluated_at", trace.at.isoformat() if trace.at is not None else utc_iso(trace.clock))
    return found  # type: ignore[no-any-return]


def _unmet_of(decision: Decision, trace: Trace) -> tuple[dict[str, Any], ...]:
    """The unmet-permit report, computed afresh: new dicts and lists each time, shared with nothing."""
    if decision.effect == "deny" and trace.policy is not None and trace.outcomes is not None and trace.activation is not None:
        return trace.policy._procedure.unmet(trace)  # type: ignore[no-any-return]
    return ()


def _add_details(made: list[dict[str, Any]], own: tuple[dict[str, Any], ...]) -> None:
    """Each reference's message detail (this decision's own) into its freshly made copy."""
    for copy, ref in zip(made, own):
        detail = ref["message"].get("detail")
        if detail is not None:
            copy["message"]["detail"] = detail


def _fresh(value: Any) -> Any:
    """A copy of JSON-like data to any depth: new dicts and lists (tuples become lists)."""
    kind = type(value)
    if kind is dict:
        return {k: _fresh(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_fresh(v) for v in value]
    return value


def _restore(cls: type[Decision], fields: dict[str, Any], decision_id: str, evaluated_at: str, rules: dict[str, str],
             unmet: tuple[dict[str, Any], ...] = ()) -> Decision:
    trace = Trace(None, None, None, None, 0.0)
    trace.fixed.update(decision_id=decision_id, evaluated_at=evaluated_at, unmet=unmet)
    return cls._make(**fields, _trace=trace, _outcomes=RuleOutcomes(rules, tuple(rules), {}))


def _dumps(value: Any) -> bytes:
    """orjson.dumps (orjson is imported on first use: deciding alone does not need it)."""
    dumps = _ORJSON.get("dumps")
    if dumps is None:
        import orjson

        _ORJSON["fragment"] = orjson.Fragment
        dumps = _ORJSON["dumps"] = orjson.dumps
    return dumps(value)


_ORJSON: dict[str, Callable[[Any], Any]] = {}
