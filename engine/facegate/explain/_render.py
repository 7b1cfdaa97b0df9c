"""Remedies as text for a person (``facegate decide --remedies``)."""

from __future__ import annotations

from typing import Any


def no_variant_proof(policy: Any, request: Any) -> dict[str, Any] | None:
    """With z3-solver installed: the solver's verdict on whether any lawful variant exists."""
    try:
        from ..analysis._variants import lawful_variant
    except ImportError:
        return None
    return lawful_variant(policy, request)


def render_remedies(decision: Any, report: Any, proof: dict[str, Any] | None = None) -> str:
    if decision.permitted:
        return "  remedies: none needed (permitted)"
    if decision.reason in ("invalid_request", "policy_not_in_force"):
        return f"  remedies: none searched ({decision.reason}: fix the request or the pack first)"
    if not report.remedies:
        if proof is not None and proof["status"] == "found":
            return f"  no remedy found by the bounded search, but the solver found a lawful variant: {proof['variant']}"
        if (proof is not None and proof["status"] == "none") or (proof is None and report.exhausted):
            how = "proved by the solver over every value of the actionable facts" if proof is not None else "search exhausted; install facegate[analysis] for a proof"
            return ("  no lawful variant: no change to the actionable facts (consent, notices, storage, review, "
                    "capture, impact assessment, filing) turns this deny into a permit; the rest of the request "
                    f"(operation, purpose, place, subject, actor, legal ground) is what makes it unlawful ({how})")
        return f"  no remedy found within the search bound ({report.variants_decided} variants decided); none is claimed not to exist"
    lines = [f"  remedies ({len(report.remedies)}, smallest first; each re-decided to a permit):"]
    for n, rem in enumerate(report.remedies, 1):
        lines.append(f"  {n}. " + "; ".join(c["plain"] for c in rem["changes"]))
        det = ", ".join(sorted({d["provision"] for d in rem["decision"]["determining"]}))
        obl = ", ".join(rem["decision"]["obligations"]) or "none"
        lines.append(f"     -> {rem['decision']['effect']} under {det}; obligations: {obl}")
    return "\n".join(lines)
