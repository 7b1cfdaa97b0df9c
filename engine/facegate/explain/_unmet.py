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
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .._compile import EvalError
from ..cel import CELError

if TYPE_CHECKING:
    from ._items import Item, PolicyItems

APPLIED, SKIPPED = "applied", "skipped"


def unmet_permits(policy: Any, candidates: Iterable[Any], activation: Any, budget: Any,
                  outcomes: Any) -> tuple[dict[str, Any], ...]:
    """The relevant enforce-mode permits that did not apply, each with its failed items.

    ``candidates`` are the rules the decision evaluated for this operation; ``outcomes`` the
    rule outcomes it recorded (rules it did not record did not apply).
    """
    permits, ids, order = _permits_of(candidates)
    if not permits or any(o == APPLIED and rule_id in ids for rule_id, o in outcomes.items()):
        return ()
    table = _items_for(policy)
    values = _fused(table, permits, order, activation)(activation, budget)
    out = []
    for rule in permits:
        outcome = outcomes.get(rule.id, "not_applicable")
        entry: dict[str, Any] = {
            "rule": rule.id,
            "provision": rule.provision,
            "article": rule.article,
            "title": rule.title,
            "outcome": outcome,
            "failed": [],
            "excepted_by": [],
        }
        if outcome == SKIPPED:
            entry["failed"].append({"condition": "valid_from/valid_until", "plain": "the rule is not in force on this day", "value": False})
            out.append(entry)
            continue
        items = table.rules[rule.id]
        when, unless = values[rule.id]
        entry["failed"] = [_shown(i, v) for i, v in zip(items.when, when, strict=True) if v is not True]
        if not entry["failed"] and items.unless:
            entry["excepted_by"] = [_shown(i, v) for i, v in zip(items.unless, unless, strict=True) if v is True]
        out.append(entry)
    return tuple(out)


_lock = threading.Lock()
_PERMITS: dict[int, tuple[Any, tuple[Any, ...], frozenset[str], tuple[str, ...]]] = {}  # id(candidates) -> (candidates, permits, ids)


def _permits_of(candidates: Iterable[Any]) -> tuple[tuple[Any, ...], frozenset[str], tuple[str, ...]]:
    """The enforce-mode permits among ``candidates``; kept per candidates tuple (the procedure
    keeps one per operation), which the entry holds so its id cannot be reused."""
    found = _PERMITS.get(id(candidates))
    if found is None or found[0] is not candidates:
        permits = tuple(r for r in candidates if r.effect == "permit" and r.mode == "enforce")
        found = (candidates, permits, frozenset(r.id for r in permits), tuple(r.id for r in permits))
        if isinstance(candidates, tuple) and len(_PERMITS) < 4096:
            _PERMITS[id(candidates)] = found
    return found[1], found[2], found[3]


def _items_for(policy: Any) -> PolicyItems:
    found = policy.__dict__.get("_explain_items")
    if found is not None:
        return found  # type: ignore[no-any-return]
    from ._items import items_for  # lazy: the plain-words renderer imports the policy module

    return items_for(policy)


def _fused(table: PolicyItems, permits: Sequence[Any], order: tuple[str, ...], activation: Any) -> Any:
    """``run(activation, budget) -> {rule id: (when values, unless values)}`` for ``permits``, the
    items of all of them fused into one generated function (built once per operation and kept)."""
    request = activation.get("request") if isinstance(activation, dict) else None
    operation = request.get("operation") if isinstance(request, dict) else None
    key = (operation if isinstance(operation, str) else "", order)
    found = table.fused.get(key)
    if found is None:
        with _lock:
            found = table.fused.get(key)
            if found is None:
                found = table.fused[key] = _build(table, permits, key[0])
    return found


def _build(table: PolicyItems, permits: Sequence[Any], operation: str) -> Any:
    shapes = [(r.id, table.rules[r.id].when, table.rules[r.id].unless) for r in permits]
    flat = [i for _, when, unless in shapes for i in (*when, *unless)]
    if not all(hasattr(i.program, "tree") and hasattr(i.program, "checked") for i in flat):
        return _one_by_one(shapes)  # the interpreter backend: no checked trees to fuse
    from ..cel._shared import Side, compile_rule_set

    known: dict[tuple[str, ...], str | int | bool] | None = {("request", "operation"): operation} if operation else None
    fused = compile_rule_set([(Side((i.program.tree,), (i.program.checked,)), None) for i in flat], table.functions, known)

    def run(activation: Any, budget: Any) -> dict[str, tuple[list[Any], list[Any]]]:
        values: list[Any] = [False] * len(flat)  # an item left out of the results folded to, or is, false
        for index, value, _ in fused.run(activation, budget):
            values[index] = value
        out, at = {}, 0
        for rule_id, when, unless in shapes:
            out[rule_id] = (values[at:at + len(when)], values[at + len(when):at + len(when) + len(unless)])
            at += len(when) + len(unless)
        return out

    return run


def _one_by_one(shapes: list[tuple[str, tuple[Item, ...], tuple[Item, ...]]]) -> Any:
    def run(activation: Any, budget: Any) -> dict[str, tuple[list[Any], list[Any]]]:
        return {rule_id: ([i.run(activation, budget) for i in when], [i.run(activation, budget) for i in unless])
                for rule_id, when, unless in shapes}

    return run


def _shown(item: Item, value: Any) -> dict[str, Any]:
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
