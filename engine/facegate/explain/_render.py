"""Remedies as text for a person (``facegate decide --remedies``)."""

from __future__ import annotations

from typing import Any


def render_remedies(decision: Any, report: Any) -> str:
    if decision.permitted:
        return "  remedies: none needed (permitted)"
    if decision.reason in ("invalid_request", "policy_not_in_force"):
        return f"  remedies: none searched ({decision.reason}: fix the request or the pack first)"
    if not report.remedies:
        if report.proved_none or (report.proved_none is None and report.exhausted):
            how = ("proved by the solver over every value of the actionable facts" if report.proved_none
                   else "search exhausted; install facegate[analysis] for a proof")
            return ("  no lawful variant: no change to the actionable facts (consent, notices, storage, review, "
                    "capture, impact assessment, filing) turns this deny into a permit; the rest of the request "
                    f"(operation, purpose, place, subject, actor, legal ground) is what makes it unlawful ({how})")
        return f"  no remedy found within the search bound ({report.variants_decided} variants decided); none is claimed not to exist"
    how = " (found by the solver, then minimised)" if report.proved_none is False else ""
    lines = [f"  remedies ({len(report.remedies)}, smallest first; each re-decided to a permit){how}:"]
    for n, rem in enumerate(report.remedies, 1):
        lines.append(f"  {n}. " + "; ".join(c["plain"] for c in rem["changes"]))
        det = ", ".join(sorted({d["provision"] for d in rem["decision"]["determining"]}))
        obl = ", ".join(rem["decision"]["obligations"]) or "none"
        lines.append(f"     -> {rem['decision']['effect']} under {det}; obligations: {obl}")
    return "\n".join(lines)
