"""Unmet permits: for a deny, the permits of the request's operation that did not apply, and why.

Every deny carries them (``Decision.unmet``), not only an explained one: a legal team fixing a
forbid must see at once that consent is missing too.  Only permits that can apply to the
request's operation are listed (the erasure permit is not an obstacle to an analysis); when a
permit did apply -- the deny came from a forbid -- there is no unmet permit to list.

Each entry names the rule and provision and lists the items (see :mod:`._items`) that failed, in
plain words, and the exceptions (``unless``) that lifted the permit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._compile import EvalError
from ..cel import CELError

if TYPE_CHECKING:
    from ._items import Item

APPLIED, SKIPPED = "applied", "skipped"


def unmet_permits(policy: Any, candidates: Iterable[Any], activation: Any, budget: Any,
                  outcomes: Any) -> tuple[dict[str, Any], ...]:
    """The relevant enforce-mode permits that did not apply, each with its failed items.

    ``candidates`` are the rules the decision evaluated for this operation; ``outcomes`` the
    rule outcomes it recorded (rules it did not record did not apply).
    """
    permits = [r for r in candidates if r.effect == "permit" and r.mode == "enforce"]
    if any(outcomes.get(r.id) == APPLIED for r in permits):
        return ()
    if not permits:
        return ()
    from ._items import items_for  # lazy: the plain-words renderer imports the policy module

    table = items_for(policy)
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
        failed = [_shown(i, i.run(activation, budget)) for i in items.when]
        entry["failed"] = [f for f in failed if f["value"] is not True]
        if not entry["failed"] and items.unless:
            values = [i.run(activation, budget) for i in items.unless]
            entry["excepted_by"] = [_shown(i, v) for i, v in zip(items.unless, values, strict=True) if v is True]
        out.append(entry)
    return tuple(out)


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
