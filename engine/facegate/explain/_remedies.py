"""Remedies: the smallest sets of fact changes that turn a deny into a permit under the same pack.

Only *actionable* facts change (:data:`facegate.explain._facts.ACTIONABLE`: consent, notices,
storage, human review, the impact assessment, the filing ...); the operation, purpose, place,
subject, actor and legal ground are facts about the world and stay as they are.  So a camera in
a toilet has no remedy, while an ethnicity analysis for marketing without separate consent has
one: obtain separate consent for marketing.

The search is goal-directed and breadth-first by number of changed facts: at each step the
variant is decided; if a forbid determined the deny, the changes tried are those that make one
of its conditions false or its exception true; if no permit applied, those that make the next
unmet condition of a permit true.  The candidate values of a fact come from the request schema
(enum values, both booleans, list items, the integer bounds the condition mentions).  Every
remedy returned was re-decided by :meth:`Policy.decide` to a permit (its ``decision`` is that
proof), then minimised (no change can be dropped) and ranked by size.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._facts import ABSENT, Leaf, get, walk, with_changes
from ._items import Item, items_for, request_schema

MAX_CHANGES = 8  # facts one remedy may change
MAX_ITEM_CHANGES = 3  # facts changed at once to satisfy one condition
MAX_NODES = 400  # variants decided per search
MAX_REMEDIES = 5
MAX_TRIALS = 20_000  # condition evaluations per search (the item-level enumeration)

Change = tuple[tuple[str, ...], Any]


@dataclass(frozen=True)
class RemedyReport:
    """``remedies`` ranked smallest first; ``exhausted``: the search ended without hitting its bound
    (no lawful variant reachable by changing actionable facts, within ``MAX_CHANGES`` changes)."""

    remedies: tuple[dict[str, Any], ...]
    exhausted: bool
    variants_decided: int
    fixed_facts: tuple[str, ...] = field(default=())
    #: With z3-solver installed and nothing found by the search: True when the solver proved that
    #: no value of the actionable facts is lawful, False when it found a variant (then minimised
    #: into the remedy returned), None when it was not asked or could not tell.
    proved_none: bool | None = None

    @property
    def none(self) -> bool:
        return not self.remedies


def remedies_of(decision: Any) -> tuple[dict[str, Any], ...]:
    """``Decision.remedies``: computed on first use for a deny, cached on the decision."""
    cached = decision.__dict__.get("_remedies")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    origin = decision.__dict__.get("_origin")
    found: tuple[dict[str, Any], ...] = ()
    if origin is not None and not decision.permitted:
        policy, request, now = origin
        found = find_remedies(policy, request, at=now).remedies
    decision.__dict__["_remedies"] = found
    return found


def find_remedies(policy: Any, request: Mapping[str, Any], *, at: Any = None, solver: bool = True) -> RemedyReport:
    """Search the remedies of one request's deny (empty for a permit or an invalid request).

    When the bounded search finds none and ``solver`` is true and z3-solver is installed, the
    solver decides whether any lawful variant exists (:mod:`facegate.analysis._variants`); a
    variant it finds is re-decided, minimised and returned as the remedy.
    """
    report = _Search(policy, request, at).run()
    if report.remedies or not solver or report.variants_decided <= 1 and report.exhausted and _trivial(policy, request, at):
        return report
    try:
        from ..analysis._variants import lawful_variant
    except ImportError:
        return report
    day = at.date().isoformat() if at is not None else None
    verdict = lawful_variant(policy, request, day=day)
    if verdict["status"] == "none":
        return dataclasses.replace(report, exhausted=True, proved_none=True)
    if verdict["status"] != "found":
        return report
    search = _Search(policy, request, at)
    changes = {leaf.path: _changed(leaf, request, verdict["variant"]) for leaf in search.leaves}
    changes = {path: v for path, v in changes.items() if v is not _SAME}
    if not changes or not search.decide(changes)[1].permitted:
        return report
    found = search.report([changes], exhausted=True, nodes=report.variants_decided)
    return dataclasses.replace(found, proved_none=False)


_SAME: Any = object()


def _changed(leaf: Leaf, request: Mapping[str, Any], variant: Mapping[str, Any]) -> Any:
    before, after = get(request, leaf.path), get(variant, leaf.path)
    if before == after:
        return _SAME
    if not after[0]:
        return ABSENT
    return tuple(after[1]) if isinstance(after[1], list) else after[1]


def _trivial(policy: Any, request: Mapping[str, Any], at: Any) -> bool:
    """Permitted, or invalid, or outside the pack's validity: nothing for a solver to look at."""
    d = policy.decide(request, at=at)
    return bool(d.permitted or d.reason in ("invalid_request", "policy_not_in_force"))


class _Search:
    def __init__(self, policy: Any, request: Mapping[str, Any], at: Any) -> None:
        self.policy = policy
        self.request = request
        self.at = at
        self.items = items_for(policy)
        leaves, _ = walk(request_schema(policy))
        actionable = self.items.actionable
        self.leaves = [leaf for leaf in leaves if leaf.actionable_in(actionable) and leaf.supported]
        self.fixed = tuple(leaf.dotted for leaf in leaves if not leaf.actionable_in(actionable))
        self.decided: dict[frozenset[Change], Any] = {}
        self.trials = 0
        self.truncated = False  # some condition might have been met with more changes than tried

    def decide(self, changes: Mapping[tuple[str, ...], Any]) -> tuple[dict[str, Any], Any]:
        variant = with_changes(self.request, changes)
        return variant, self.policy.decide(variant, at=self.at)

    def run(self) -> RemedyReport:
        base = self.policy.decide(self.request, at=self.at)
        if base.permitted or base.reason in ("invalid_request", "policy_not_in_force"):
            return RemedyReport((), True, 1, self.fixed)
        solutions: list[dict[tuple[str, ...], Any]] = []
        queue: list[tuple[int, int, dict[tuple[str, ...], Any]]] = [(0, 0, {})]
        seen: set[frozenset[Change]] = {frozenset()}
        counter = itertools.count(1)
        nodes = 0
        best: int | None = None
        while queue:
            size, _, changes = heapq.heappop(queue)
            if best is not None and size > best + 1:
                break  # keep the smallest remedies and the next size up, no further
            if nodes >= MAX_NODES or self.trials >= MAX_TRIALS:
                return self.report(solutions, exhausted=False, nodes=nodes)
            nodes += 1
            variant, d = self.decide(changes)
            if d.permitted:
                solutions.append(changes)
                best = size if best is None else min(best, size)
                continue
            if size >= MAX_CHANGES or d.reason in ("invalid_request", "policy_not_in_force"):
                continue
            for fix in self.fixes(d, variant):
                new = {**changes, **fix}
                key = frozenset(_key(new))
                if key in seen or len(new) > MAX_CHANGES:
                    continue
                seen.add(key)
                if any(frozenset(_key(s)) <= key for s in solutions):
                    continue
                heapq.heappush(queue, (len(new), next(counter), new))
        return self.report(solutions, exhausted=not self.truncated, nodes=nodes)

    # -- what to try next
    def fixes(self, d: Any, variant: Mapping[str, Any]) -> Iterable[dict[tuple[str, ...], Any]]:
        activation = self.items.make_activation(variant)
        if d.reason == "forbidden":
            rule_items = self.items.rules[d.determining[0]["rule"]]
            for item in rule_items.when:
                yield from self.item_fixes(item, False, variant, activation)
            for item in rule_items.unless:
                if _value(item, activation) is not True:
                    yield from self.item_fixes(item, True, variant, activation)
            return
        for rule in self.items.relevant(variant["operation"]):
            if rule.effect != "permit" or rule.mode != "enforce":
                continue
            rule_items = self.items.rules[rule.id]
            pending = [i for i in rule_items.when if _value(i, activation) is not True]
            if pending:
                yield from self.item_fixes(pending[0], True, variant, activation)
            else:
                for item in rule_items.unless:
                    yield from self.item_fixes(item, False, variant, activation)

    def item_fixes(self, item: Item, target: bool, variant: Mapping[str, Any], activation: Any) -> list[dict[tuple[str, ...], Any]]:
        """Smallest sets of actionable facts whose change gives ``item`` the value ``target``."""
        leaves = [leaf for leaf in self.leaves if _touches(leaf, item)]
        if not leaves:
            return []
        numbers = _numbers(item, self.policy.pack.parameters)
        mentioned = _mentioned(item, self.policy.pack.parameters)
        options = [(leaf, _candidates(leaf, variant, numbers, mentioned)) for leaf in leaves]
        found: list[dict[tuple[str, ...], Any]] = []
        for size in range(1, MAX_ITEM_CHANGES + 1):
            for combo in itertools.combinations(options, size):
                for values in itertools.product(*(vals for _, vals in combo)):
                    if self.trials >= MAX_TRIALS:
                        self.truncated = True
                        return found[:8]
                    self.trials += 1
                    changes = {leaf.path: v for (leaf, _), v in zip(combo, values, strict=True)}
                    trial = with_changes(variant, changes)
                    if _value(item, {**activation, "request": trial}) is target:
                        found.append(changes)
            if found:
                return found[:8]
        if len(leaves) > MAX_ITEM_CHANGES:
            self.truncated = True  # more facts at once might still meet it
        return []

    # -- the answer
    def report(self, solutions: list[dict[tuple[str, ...], Any]], *, exhausted: bool, nodes: int) -> RemedyReport:
        minimal: list[dict[tuple[str, ...], Any]] = []
        for sol in sorted(solutions, key=len):
            sol = self.minimise(sol)
            key = frozenset(_key(sol))
            if any(frozenset(_key(m)) <= key for m in minimal):
                continue
            minimal.append(sol)
        minimal.sort(key=len)  # stable: among equals, the order the search found them (schema order)
        out = []
        for sol in minimal[:MAX_REMEDIES]:
            _, d = self.decide(sol)
            if not d.permitted:  # pragma: no cover - every solution was decided to a permit
                continue
            out.append(self.describe(sol, d))
        return RemedyReport(tuple(out), exhausted, nodes, self.fixed)

    def minimise(self, changes: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], Any]:
        current = dict(changes)
        for path in list(current):
            trial = {p: v for p, v in current.items() if p != path}
            if trial and self.decide(trial)[1].permitted:
                current = trial
        return current

    def describe(self, changes: Mapping[tuple[str, ...], Any], d: Any) -> dict[str, Any]:
        rows = []
        for path in sorted(changes):
            present, before = get(self.request, path)
            after = changes[path]
            rows.append({
                "fact": ".".join(path),
                "from": before if present else None,
                "to": None if after is ABSENT else (list(after) if isinstance(after, tuple) else after),
                "plain": _plain_change(path, present, before, after),
            })
        return {
            "changes": rows,
            "decision": {
                "effect": d.effect,
                "determining": [{"rule": x["rule"], "provision": x["provision"]} for x in d.determining],
                "obligations": [o["type"] for o in d.obligations],
            },
        }


def _value(item: Item, activation: Any) -> Any:
    from .. import _compile

    return item.run(activation, _compile.new_budget())


def _touches(leaf: Leaf, item: Item) -> bool:
    """The condition tests this field's presence or reads it (or reads an object holding it)."""
    return leaf.path in item.paths or any(leaf.path[: len(p)] == p for p in item.reads)


_INT = re.compile(r"(?<![\w.\"])(\d+)(?![\w.\"])")


def _numbers(item: Item, params: Mapping[str, Any]) -> set[int]:
    found = {int(m.group(1)) for m in _INT.finditer(item.expanded)}
    for name in re.findall(r"params\.([A-Za-z_][A-Za-z0-9_]*)", item.expanded):
        v = params.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            found.add(v)
    return found


def _mentioned(item: Item, params: Mapping[str, Any]) -> list[Any]:
    """String values the condition names (literals and the lists of the parameters it reads)."""
    found: list[Any] = [m.group(1) for m in re.finditer(r'"([^"\\]*)"', item.expanded)]
    for name in re.findall(r"params\.([A-Za-z_][A-Za-z0-9_]*)", item.expanded):
        v = params.get(name)
        found.extend(v if isinstance(v, list) else [v])
    return list(dict.fromkeys(x for x in found if isinstance(x, str)))


def _candidates(leaf: Leaf, request: Mapping[str, Any], numbers: set[int], mentioned: list[Any] = ()) -> list[Any]:  # type: ignore[assignment]
    present, current = get(request, leaf.path)
    out: list[Any] = []
    if leaf.kind in ("enum", "bool"):
        out = [v for v in leaf.values if not (present and v == current)]
    elif leaf.kind == "int":
        for n in sorted(numbers):
            for v in (n - 1, n, n + 1):
                in_bounds = (leaf.minimum is None or v >= leaf.minimum) and (leaf.maximum is None or v <= leaf.maximum)
                if in_bounds and v not in out and not (present and v == current):
                    out.append(v)
    elif leaf.kind == "list":
        have = list(current) if present and isinstance(current, list) else []
        named = [v for v in leaf.values if v in mentioned]
        missing = [v for v in named if v not in have]
        if len(missing) > 1:
            out.append((*have, *missing))  # all the values the condition names at once (containsAll)
        pool = named + [v for v in leaf.values if v not in named]  # named values first
        out += [(*have, v) for v in pool if v not in have]
        out += [tuple(x for x in have if x != v) for v in have]
    if present and not leaf.required:
        out.append(ABSENT)
    return out


def _key(changes: Mapping[tuple[str, ...], Any]) -> set[Change]:
    return {(p, v if not isinstance(v, list) else tuple(v)) for p, v in changes.items()}


def _plain_change(path: tuple[str, ...], present: bool, before: Any, after: Any) -> str:
    from ..review._plain import FIELD_LABELS

    label = FIELD_LABELS.get(".".join(path), " ".join(path).replace("_", " "))
    if after is ABSENT:
        return f"leave {label} unstated"
    if isinstance(after, tuple):
        added = [v for v in after if not (present and isinstance(before, list) and v in before)]
        removed = [v for v in (before if present and isinstance(before, list) else []) if v not in after]
        if added and not removed:
            return f"add {', '.join(_q(v) for v in added)} to {label}"
        if removed and not added:
            return f"remove {', '.join(_q(v) for v in removed)} from {label}"
        return f"set {label} to {', '.join(_q(v) for v in after)}"
    if isinstance(after, bool):
        return f"make {label} {'true' if after else 'false'}" + ("" if not present else f" (now {str(before).lower()})")
    return f"set {label} to {_q(after)}" + ("" if not present else f" (now {_q(before)})")


def _q(v: Any) -> str:
    return f"“{v}”" if isinstance(v, str) else str(v)
