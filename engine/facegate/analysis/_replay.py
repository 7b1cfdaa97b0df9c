"""``facegate replay --db STORE --policy NEW``: the recorded requests, re-decided under a new pack.

The decision log keeps each request's facts (identifiers masked; nothing a rule reads is
masked by default).  Each recorded decision is decided again by the new pack (as of now, or as
of its own time with ``at_recorded``) and compared with the recorded effect; the changes are
grouped by direction and by the provision that explains them -- the forbid that now denies or no
longer denies, the permit that now grants or no longer grants, or the unmet permit -- with the
first few decision ids and requests as examples.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 3


@dataclass
class ReplayReport:
    decided: int = 0
    skipped: int = 0  # records without usable request facts (invalid requests, other kinds)
    changed: int = 0
    groups: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"decided": self.decided, "skipped": self.skipped, "changed": self.changed, "seconds": self.seconds,
                "groups": [{"change": k[0], "provision": k[1], **v} for k, v in sorted(self.groups.items())]}


def replay_records(records: Iterable[dict[str, Any]], policy: Any, *, at_recorded: bool = False) -> ReplayReport:
    report = ReplayReport()
    started = time.perf_counter()
    now = _dt.datetime.now(_dt.UTC)
    for rec in records:
        request = rec.get("request")
        if rec.get("kind") != "decision" or not isinstance(request, dict) or "invalid" in request or rec.get("violations"):
            report.skipped += 1
            continue
        at = _dt.datetime.fromisoformat(rec["time"]) if at_recorded and isinstance(rec.get("time"), str) else now
        d = policy.decide(request, at=at)
        report.decided += 1
        if d.effect == rec.get("effect"):
            continue
        report.changed += 1
        change = f"{rec.get('effect')} -> {d.effect}"
        for provision in _provisions(rec, d):
            group = report.groups.setdefault((change, provision), {"count": 0, "examples": []})
            group["count"] += 1
            if len(group["examples"]) < EXAMPLES:
                group["examples"].append({"decision_id": rec.get("decision_id"), "time": rec.get("time"),
                                          "old_reason": rec.get("reason"), "new_reason": d.reason, "request": request})
    report.seconds = time.perf_counter() - started
    return report


def _provisions(rec: dict[str, Any], d: Any) -> list[str]:
    """Why the effect changed: the provisions now determining it, or those that determined it before."""
    now = sorted({x["provision"] for x in d.determining})
    if now:
        return now
    if d.unmet:
        return sorted({u["provision"] for u in d.unmet})
    before = sorted({x["provision"] for x in rec.get("determining", [])})
    return before or [f"({d.reason})"]


def replay(db: str, policy: Any, *, since: str | None = None, at_recorded: bool = False) -> ReplayReport:
    from ..store._sqlite import SQLiteStore

    with SQLiteStore(db, readonly=True) as store:
        rows = store.audit.query(since=since, kind="decision")
        return replay_records((row["record"] for row in rows), policy, at_recorded=at_recorded)


def render(r: ReplayReport) -> str:
    rate = r.decided / r.seconds if r.seconds else 0.0
    lines = [f"replayed {r.decided} recorded decisions ({r.skipped} skipped) in {r.seconds:.2f} s ({rate:,.0f}/s); {r.changed} would change"]
    for (change, provision), g in sorted(r.groups.items()):
        lines.append(f"  {change:<15} {provision:<12} {g['count']}")
        for ex in g["examples"]:
            lines.append(f"      e.g. {ex['decision_id']} ({ex['old_reason']} -> {ex['new_reason']})")
    return "\n".join(lines)
