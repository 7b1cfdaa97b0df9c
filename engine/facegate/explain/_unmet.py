"""Unmet permits: for a deny, the permits of the request's operation that did not apply, and why.

Every deny carries them (``Decision.unmet``), not only an explained one: a legal team fixing a
forbid must see at once that consent is missing too.  Only permits that can apply to the
request's operation are listed (the erasure permit is not an obstacle to an analysis); when a
permit did apply -- the deny came from a forbid -- there is no unmet permit to list.

Each entry names the rule and provision and lists the items (see :mod:`._items`) that failed, in
plain words, and the exceptions (``unless``) that lifted the permit.

The gate reads them on every deny, so they must cost little next to the decision: all the items
of an operation's permits are compiled together into one generated function
(:func:`facegate.cel._shared.compile_rule_set`, each item a "rule" of its own), which computes a
sub-expression the items share -- a pasted variable, a ``has()`` guard -- once per call and drops
the items that fold to false once the operation is known.  Its values are the items' own
(``tests/test_explain.py`` compares them with each item's program on every shipped pack's cases);
with the interpreter backend, which has no checked trees, each item runs on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._compile import EvalError, new_budget
from .._forms import copier
from ..cel import CELError

if TYPE_CHECKING:
    from ._items import Item, PolicyItems

APPLIED, SKIPPED = "applied", "skipped"


def unmet_permits(policy: Any, candidates: Iterable[Any], activation: Any, budget: Any,
                  outcomes: Any, *, validated: bool = False) -> tuple[dict[str, Any], ...]:
    """The relevant enforce-mode permits that did not apply, each with its failed items.

    ``candidates`` are the rules the decision evaluated for this operation; ``outcomes`` the
    rule outcomes it recorded (rules it did not record did not apply).  ``validated``: the
    activation's request passed the policy's request contract (a decision's does), so the
    optimistic function may compute the values (:mod:`facegate.cel._optimistic`).  ``budget``:
    the evaluation budget, or ``None`` for a fresh one when there is something to evaluate.
    """
    request = activation.get("request") if isinstance(activation, dict) else None
    operation = request.get("operation") if isinstance(request, dict) else None
    operation = operation if isinstance(operation, str) else ""
    permits, _ids, order = _permits_of(policy, candidates, operation)
    if not permits:
        return ()
    for rule_id in order:
        if outcomes.get(rule_id) == APPLIED:
            return ()
    plan = _plan(_items_for(policy), permits, order, operation)
    values = plan.run(activation, new_budget() if budget is None else budget, validated)
    key = None
    if set(map(type, values)) <= _BOOLEAN:  # every item true or false: the report is fixed by them and the outcomes
        key = (tuple(values), tuple(map(outcomes.get, order)))
        made = plan.reports.get(key)
        if made is not None:
            return tuple(made())
    out = []
    for rule_id, head, when, unless, at in plan.rules:
        outcome = outcomes.get(rule_id, "not_applicable")
        if outcome == SKIPPED:
            failed: list[dict[str, Any]] = [{"condition": "valid_from/valid_until", "plain": "the rule is not in force on this day", "value": False}]
            out.append({**head, "outcome": outcome, "failed": failed, "excepted_by": []})
            continue
        failed = [_shown(i, v) for i, v in zip(when, values[at:at + len(when)], strict=True) if v is not True]
        excepted: list[dict[str, Any]] = []
        if not failed and unless:
            start = at + len(when)
            excepted = [_shown(i, v) for i, v in zip(unless, values[start:start + len(unless)], strict=True) if v is True]
        out.append({**head, "outcome": outcome, "failed": failed, "excepted_by": excepted})
    if key is not None and len(plan.reports) < _REPORTS_KEPT:
        made = copier(out)
        if made is not None:
            plan.reports[key] = made
    return tuple(out)


_lock = threading.Lock()
_BOOLEAN = frozenset((bool,))  # by type, not by id(): id() is an audited builtin, slow under an audit hook
_REPORTS_KEPT = 256  # reports kept per plan, by the items' values and the permits' outcomes (a few KiB of code each)


def _permits_of(policy: Any, candidates: Iterable[Any], operation: str) -> tuple[tuple[Any, ...], frozenset[str], tuple[str, ...]]:
    """The enforce-mode permits among ``candidates``; kept on the policy per operation, with the
    candidates tuple they came from (its procedure keeps one per operation: other candidates for the
    same operation are counted afresh) -- per policy, so a reloaded pack's rules are not kept alive
    by another's cache, nor crowd it out.  Looked up by the operation, not by ``id(candidates)``:
    ``id()`` is an audited builtin, slow whenever an audit hook is installed."""
    own = getattr(policy, "__dict__", None)
    kept: dict[str, Any] | None = own.setdefault("_unmet_permits", {}) if own is not None else None
    found = kept.get(operation) if kept is not None else None
    if found is None or found[0] is not candidates:
        permits = tuple(r for r in candidates if r.effect == "permit" and r.mode == "enforce")
        found = (candidates, permits, frozenset(r.id for r in permits), tuple(r.id for r in permits))
        if kept is not None and isinstance(candidates, tuple) and (operation in kept or len(kept) < 256):
            kept[operation] = found
    return found[1], found[2], found[3]


def _items_for(policy: Any) -> PolicyItems:
    found = policy.__dict__.get("_explain_items")
    if found is not None:
        return found  # type: ignore[no-any-return]
    from ._items import items_for  # lazy: the plain-words renderer imports the policy module

    return items_for(policy)


class _Plan:
    """The unmet-permit report of one operation's permits: a function computing every item's
    value (a flat list), and each rule's place in it with the parts of its entry that never change."""

    def __init__(self, table: PolicyItems, permits: Sequence[Any], operation: str) -> None:
        self.rules: list[tuple[str, dict[str, Any], tuple[Item, ...], tuple[Item, ...], int]] = []
        flat: list[Item] = []
        for r in permits:
            items = table.rules[r.id]
            head = {"rule": r.id, "provision": r.provision, "article": r.article, "title": r.title}
            self.rules.append((r.id, head, items.when, items.unless, len(flat)))
            flat.extend((*items.when, *items.unless))
        self.flat = tuple(flat)
        #: a report made once per (items' values, permits' outcomes) when every value is a boolean:
        #: a generated function returning it afresh (:func:`facegate._forms.copier`)
        self.reports: dict[tuple[Any, ...], Callable[[], list[dict[str, Any]]]] = {}
        self.run = self._fused(table, operation) if all(hasattr(i.program, "tree") and hasattr(i.program, "checked") for i in flat) \
            else self._one_by_one  # the interpreter backend: no checked trees to fuse

    def _fused(self, table: PolicyItems, operation: str) -> Any:
        from ..cel._shared import Side, compile_rule_set

        known: dict[tuple[str, ...], str | int | bool] | None = {("request", "operation"): operation} if operation else None
        compiled = compile_rule_set([(Side((i.program.tree,), (i.program.checked,)), None) for i in self.flat], table.functions, known,
                                    validated={"request": table.request_schema} if table.request_schema is not None else None)
        exact, fast = compiled.run, compiled.fast_run
        size = len(self.flat)

        def run(activation: Any, budget: Any, validated: bool = False) -> list[Any]:
            values: list[Any] = [False] * size  # an item left out of the results folded to, or is, false
            for index, value, _ in (fast if validated else exact)(activation, budget):
                values[index] = value
            return values

        return run

    def _one_by_one(self, activation: Any, budget: Any, validated: bool = False) -> list[Any]:
        return [i.run(activation, budget) for i in self.flat]


def _plan(table: PolicyItems, permits: Sequence[Any], order: tuple[str, ...], operation: str) -> _Plan:
    """The plan for ``permits`` of the request's operation, built once and kept on the policy's items."""
    key = (operation, order)
    found = table.fused.get(key)
    if found is None:
        with _lock:
            found = table.fused.get(key)
            if found is None:
                found = table.fused[key] = _Plan(table, permits, key[0])
    return found


def _shown(item: Item, value: Any) -> dict[str, Any]:
    if value is False:
        return {"condition": item.text, "plain": item.plain, "value": False}
    if isinstance(value, (EvalError, CELError)):
        shown: Any = {"error": value.message}
    elif isinstance(value, bool):
        shown = value
    else:
        shown = {"error": f"condition returned `{type(value).__name__}`, not a bool"}
    return {"condition": item.text, "plain": item.plain, "value": shown}


def describe(entry: dict[str, Any]) -> str:
    """One line for a person: ``CN23-05 cn23-05-consent: consent type is ...; ...``."""
    parts = []
    for f in entry["failed"]:
        v = f["value"]
        tail = "" if v is False else f" (could not be evaluated: {v['error']})" if isinstance(v, dict) else ""
        parts.append(f"{f['plain']}{tail}")
    text = "; ".join(parts) if parts else ""
    if entry["excepted_by"]:
        text = (text + "; " if text else "") + "excepted because " + "; ".join(e["plain"] for e in entry["excepted_by"])
    return f"{entry['provision']} {entry['rule']}: needs {text}" if entry["failed"] else f"{entry['provision']} {entry['rule']}: {text}"
