"""Decide phase: rule outcomes -> one decision.  The combining rule is the table below.

=================  ===========================  =====================================
effect             condition value              counts as
=================  ===========================  =====================================
forbid             when true, unless not true   applies -> deny (forbid overrides permit)
forbid             when/unless errors           applies -> deny (fail closed), error listed
permit             when true, unless not true   applies (a permit needs at least one)
permit             errors                       does not apply, error listed
obligation         when true, unless not true   its obligations attach to a permit
obligation         errors                       obligations attach anyway (duty kept), error listed
advice             applies                      a warning; never blocks
=================  ===========================  =====================================

Mode ``warn``: an applying forbid (or an erroring rule) becomes a warning and never blocks.
Mode ``audit``: evaluated and recorded in ``rules`` only.  A rule outside its validity window
is ``skipped``.  With no applicable permit the decision is deny (default deny).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._compile import EvalError
from ._vocabulary import RuleOutcome

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


def condition_outcome(when_values: Iterable[Any], unless_values: Iterable[Any]) -> tuple[str, str | None]:
    """Combine the values of a rule's conditions into one rule outcome (and the first error).

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
