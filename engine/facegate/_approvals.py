"""Sign-off: a reviewer approves a rule (or the whole pack) at a revision; the audit chain keeps it.

An approval is an audit record of kind ``approval``::

    {"kind": "approval", "by": "lin", "role": "reviewer", "pack": "cn-cac-2023-draft",
     "revision": "sha256:…", "scope": "rule", "rule": "cn23-14-…", "rule_digest": "sha256:…",
     "note": "…", "time": "…"}

It is appended to the same tamper-evident chain as the decisions, so ``facegate audit verify``
covers it and nobody can quietly add, drop or back-date one.  An approval holds for exactly
what was read:

- a *rule* approval names the rule's digest (its YAML as loaded, canonical JSON): editing that
  rule voids it; editing another rule does not;
- a *pack* approval names the pack revision: any change to the pack voids it.

:func:`unapproved` lists the rules of a loaded policy that no valid approval covers; with
``approval: {required: true}`` in the operator configuration, :meth:`facegate.Gate.from_config`
refuses such a pack (:func:`require_approved`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .policy import Policy

KIND = "approval"


def rule_digest(spec: Mapping[str, Any]) -> str:
    """The digest of one rule as loaded (its YAML data, not its comments or layout)."""
    canon = json.dumps(spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Approval:
    """One approval read back from the audit chain (``seq`` is its place in the chain)."""

    seq: int
    time: str
    by: str
    role: str
    pack: str
    revision: str
    scope: str
    rule: str | None
    rule_digest: str | None
    note: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Approval:
        r = row["record"]
        return cls(int(row["seq"]), str(r.get("time", "")), str(r.get("by", "")), str(r.get("role", "")),
                   str(r.get("pack", "")), str(r.get("revision", "")), str(r.get("scope", "")),
                   r.get("rule"), r.get("rule_digest"), str(r.get("note") or ""))


def approval_record(policy: Policy, *, by: str, role: str, rule: str | None = None, note: str = "") -> dict[str, Any]:
    """The audit record approving ``rule`` (or, with ``rule=None``, the whole pack) as loaded now."""
    record: dict[str, Any] = {"kind": KIND, "by": by, "role": role, "pack": policy.id, "version": policy.version,
                              "revision": policy.revision, "scope": "pack" if rule is None else "rule", "note": note}
    if rule is not None:
        found = [r for r in policy.rules if r.id == rule]
        if not found:
            raise KeyError(rule)
        record["rule"] = rule
        record["rule_digest"] = rule_digest(found[0].source)
    return record


def approvals(audit: Any, pack_id: str) -> list[Approval]:
    """Every approval of pack ``pack_id`` in the chain, oldest first."""
    return [a for a in (Approval.from_row(row) for row in audit.query(kind=KIND)) if a.pack == pack_id]


def approved_rules(policy: Policy, found: Iterable[Approval]) -> dict[str, Approval]:
    """Rule id -> the latest approval that still holds for it (pack approvals at this revision count)."""
    digests = {r.id: rule_digest(r.source) for r in policy.rules}
    out: dict[str, Approval] = {}
    for a in found:
        if a.scope == "pack" and a.revision == policy.revision:
            for rid in digests:
                out[rid] = a
        elif a.scope == "rule" and a.rule in digests and a.rule_digest == digests[a.rule]:
            out[a.rule] = a
    return out


def unapproved(policy: Policy, audit: Any) -> list[str]:
    """Ids of the rules no valid approval in ``audit`` covers, in pack order."""
    held = approved_rules(policy, approvals(audit, policy.id))
    return [r.id for r in policy.rules if r.id not in held]


def require_approved(policy: Any, audit: Any) -> None:
    """Raise :class:`ConfigError` naming the unapproved rules, if any (the gate's switch).

    ``policy`` is a :class:`Policy` or a composition of several (each of its packs is checked).
    """
    for member in getattr(policy, "policies", (policy,)):
        missing = unapproved(member, audit)
        if missing:
            shown = ", ".join(f"`{m}`" for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ConfigError(f"pack `{member.id}` revision {member.revision[:19]} has {len(missing)} unapproved "
                              f"rule{'s' if len(missing) != 1 else ''} ({shown}); `approval.required` is on")
