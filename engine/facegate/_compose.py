"""Composition: one deployment, several packs, each deciding the requests it governs.

A pack says what it governs in ``governs:`` (jurisdictions, jurisdictions it excludes, periods in
force, purposes the instrument does not reach).  For one request:

===============================  ==============================================================
situation                        composed decision
===============================  ==============================================================
invalid for a governing pack     deny (that pack's ``invalid_request``)
no pack governs it               deny ``no_governing_pack`` (or, only if the deployment config
                                 says ``ungoverned: permit``, permit ``ungoverned_permitted``
                                 with a warning and no duties)
any governing pack denies        deny — a deny from any pack overrides every permit
every governing pack permits     permit, with every pack's duties merged (strictest retention)
===============================  ==============================================================

The decision lists every loaded pack: whether it governed the request (and if not, why), and for
each governing pack its effect, reason, revision and determining provisions.  Nothing here
evaluates rules: each pack decides exactly as it would alone.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from . import _decide
from ._vocabulary import Reason
from .policy import Decision, Policy, RuleOutcomes

NO_GOVERNING_PACK = Reason.NO_GOVERNING_PACK
UNGOVERNED_PERMITTED = "ungoverned_permitted"
UNGOVERNED_MODES = ("deny", "permit")
#: When several packs deny, the composed reason is the first of theirs in this order.
_DENY_ORDER = ("invalid_request", "forbidden", "no_permit", "policy_not_in_force", "evidence_unavailable", "audit_unavailable")


@dataclass(frozen=True)
class Governs:
    """What one pack governs.  ``jurisdictions`` None = everywhere; a country code covers its subdivisions."""

    jurisdictions: tuple[str, ...] | None
    excluded_jurisdictions: tuple[str, ...] = ()
    in_force: tuple[tuple[str, str | None], ...] = ()
    excluded_purposes: frozenset[str] = frozenset()
    notes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, policy: Policy) -> Governs:
        """From the pack's ``governs:`` block; without one, its jurisdiction and validity dates."""
        pack = policy.pack
        meta = pack.meta
        spec: Mapping[str, Any] = getattr(pack, "governs", None) or meta.get("governs") or {}
        jurisdictions = spec.get("jurisdictions")
        if jurisdictions is None and meta.get("jurisdiction"):
            jurisdictions = [meta["jurisdiction"]]
        periods = tuple((p["from"], p.get("until")) for p in spec.get("in_force", ()))
        if not periods and meta.get("valid_from"):
            periods = ((meta["valid_from"], meta.get("valid_until")),)
        return cls(
            jurisdictions=tuple(jurisdictions) if jurisdictions is not None else None,
            excluded_jurisdictions=tuple(spec.get("excluded_jurisdictions", ())),
            in_force=periods,
            excluded_purposes=frozenset(spec.get("excluded_purposes", ())),
            notes=dict(spec.get("notes", {})),
        )

    def why_not(self, request: Mapping[str, Any], day: str) -> str | None:
        """None when the pack governs ``request`` on ``day``; otherwise the reason it does not."""
        if self.in_force and not any(start <= day and (end is None or day <= end) for start, end in self.in_force):
            return f"not_in_force_on:{day}"
        if self.jurisdictions is not None:
            where = request.get("jurisdiction")
            if not isinstance(where, str):
                return "jurisdiction_not_stated"
            if not any(_within(where, j) for j in self.jurisdictions):
                return f"outside_jurisdiction:{where}"
            if any(_within(where, j) for j in self.excluded_jurisdictions):
                return f"excluded_jurisdiction:{where}"
        purpose = request.get("purpose")
        if isinstance(purpose, str) and purpose in self.excluded_purposes:
            return f"excluded_purpose:{purpose}"
        return None


def _within(code: str, area: str) -> bool:
    """``CN-31`` is within ``CN``; ``US-IL`` within ``US-IL``; ``US-IL`` not within ``US-CA``."""
    return code == area or (len(area) == 2 and code.startswith(area + "-"))


def request_day(request: Mapping[str, Any], at: _dt.datetime | None) -> tuple[str, _dt.datetime]:
    """The day a request is dated: its ``time`` fact when it states one, else ``at``, else now (UTC)."""
    stated = request.get("time") if isinstance(request, Mapping) else None
    if isinstance(stated, str) and len(stated) >= 10:
        try:
            moment = _dt.datetime.fromisoformat(stated.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=_dt.UTC)
            return moment.date().isoformat(), moment
    now = at or _dt.datetime.now(_dt.UTC)
    return now.date().isoformat(), now


@dataclass(frozen=True)
class ComposedDecision(Decision):
    """A :class:`Decision` plus ``packs``: every loaded pack's part in it."""

    packs: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["packs"] = [dict(p) for p in self.packs]
        return out


class Composition:
    """Several packs deciding together.  Immutable and safe to share across threads, like a Policy."""

    def __init__(self, policies: Sequence[Policy], *, ungoverned: str = "deny") -> None:
        if not policies:
            raise ValueError("a composition needs at least one pack")
        ids = [p.id for p in policies]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"pack `{dupes[0]}` is listed twice")
        if ungoverned not in UNGOVERNED_MODES:
            raise ValueError(f"ungoverned must be one of {UNGOVERNED_MODES}, not `{ungoverned}`")
        self.policies = tuple(policies)
        self.governs = tuple(Governs.of(p) for p in self.policies)
        self.ungoverned = ungoverned
        self.id = "+".join(ids)
        self.version = "+".join(p.version for p in self.policies)
        canon = json.dumps([[p.id, p.revision] for p in self.policies] + [ungoverned], separators=(",", ":"))
        self.revision = "sha256:" + hashlib.sha256(canon.encode()).hexdigest()
        self._ident = {"id": self.id, "version": self.version, "revision": self.revision}

    def __repr__(self) -> str:
        return f"<Composition {self.id}>"

    @property
    def request_schema(self) -> dict[str, Any]:
        """One request contract for the whole deployment: a v2 pack's (it carries every listed pack's facts)."""
        v2 = [p for p in self.policies if getattr(p.pack, "format", "") == "facegate/policy/v2"]
        return (v2 or list(self.policies))[0].request_schema

    def governing(self, request: Mapping[str, Any], *, at: _dt.datetime | None = None) -> list[Policy]:
        day, _ = request_day(request, at)
        return [p for p, g in zip(self.policies, self.governs) if g.why_not(request, day) is None]

    def decide(self, request: Mapping[str, Any], *, explain: bool = False, at: _dt.datetime | None = None) -> ComposedDecision:
        """Decide ``request`` by every pack that governs it.  Never raises for a bad request."""
        if not isinstance(request, Mapping):
            alone = self.policies[0].decide(request, at=at)  # the pack's own invalid_request
            return self._combine([(self.policies[0], alone)], [], at)
        day, moment = request_day(request, at)
        decided: list[tuple[Policy, Decision]] = []
        skipped: list[dict[str, Any]] = []
        for policy, governs in zip(self.policies, self.governs):
            why = governs.why_not(request, day)
            if why is None:
                decided.append((policy, policy.decide(request, explain=explain, at=moment)))
            else:
                skipped.append(_not_governing(policy, why, governs))
        return self._combine(decided, skipped, moment)

    def _combine(self, decided: list[tuple[Policy, Decision]], skipped: list[dict[str, Any]],
                 moment: _dt.datetime | None) -> ComposedDecision:
        by_pack = {part["pack"]: part for part in [_part(p, d) for p, d in decided] + skipped}
        packs = tuple(by_pack[p.id] for p in self.policies if p.id in by_pack)  # in the configuration's order
        notes = [w for s in skipped for w in s.get("warnings", ())]
        if not decided:
            effect = "permit" if self.ungoverned == "permit" else "deny"
            reason = UNGOVERNED_PERMITTED if effect == "permit" else NO_GOVERNING_PACK
            warning = {"rule": "facegate.composition", "provision": "", "article": None, "article_verified": False,
                       "pack": "", "message": {"en": "no loaded pack governs this request; the deployment permits ungoverned requests"}}
            return self._make(effect, reason, packs, warnings=([warning] if effect == "permit" else []) + notes, moment=moment)
        denying = [(p, d) for p, d in decided if not d.permitted]
        tag = _tagger()
        errors = [tag(p, e) for p, d in decided for e in d.errors]
        warnings = [tag(p, w) for p, d in decided for w in d.warnings] + notes
        violations = [v for _, d in decided for v in d.violations]
        if denying:
            reason = min((d.reason for _, d in denying), key=lambda r: _DENY_ORDER.index(r) if r in _DENY_ORDER else len(_DENY_ORDER))
            return self._make("deny", reason, packs,
                              determining=[tag(p, x) for p, d in denying for x in d.determining],
                              errors=errors, warnings=warnings, violations=violations, moment=moment,
                              unmet=[tag(p, u) for p, d in denying for u in getattr(d, "unmet", ())])
        obligations = _decide.merge_obligations(
            {**o, "sources": [{**s, "pack": p.id} for s in o.get("sources", ())]} for p, d in decided for o in d.obligations
        )
        return self._make("permit", "permitted", packs, determining=[tag(p, x) for p, d in decided for x in d.determining],
                          errors=errors, warnings=warnings, obligations=obligations, moment=moment)

    def _make(self, effect: str, reason: str, packs: tuple[dict[str, Any], ...], *, determining: Iterable[dict[str, Any]] = (),
              errors: Iterable[dict[str, Any]] = (), warnings: Iterable[dict[str, Any]] = (),
              obligations: Iterable[dict[str, Any]] = (), violations: Iterable[dict[str, str]] = (),
              moment: _dt.datetime | None = None, unmet: Iterable[dict[str, Any]] = ()) -> ComposedDecision:
        import time

        from ._decision import Trace

        trace = Trace(None, None, {}, moment, time.time())
        trace.fixed["unmet"] = tuple(unmet)
        return cast(ComposedDecision, ComposedDecision._make(
            effect=effect, reason=reason, determining=tuple(determining), errors=tuple(errors), warnings=tuple(warnings),
            obligations=tuple(obligations), violations=tuple(violations), policy=self._ident, duration_us=0.0,
            explanation=None, packs=packs, _trace=trace, _outcomes=RuleOutcomes({}, (), {}),
        ))


def _tagger() -> Any:
    def tag(policy: Policy, item: Mapping[str, Any]) -> dict[str, Any]:
        return {**item, "pack": policy.id}

    return tag


def _part(policy: Policy, decision: Decision) -> dict[str, Any]:
    return {
        "pack": policy.id,
        "version": policy.version,
        "revision": policy.revision,
        "governs": True,
        "decision": decision.effect,
        "reason": decision.reason,
        "determining": [{"rule": d["rule"], "provision": d["provision"], "article": d["article"],
                         **({"grade": d["grade"]} if "grade" in d else {})} for d in decision.determining],
        "decision_id": decision.decision_id,
    }


def _not_governing(policy: Policy, why: str, governs: Governs) -> dict[str, Any]:
    part: dict[str, Any] = {"pack": policy.id, "version": policy.version, "revision": policy.revision,
                            "governs": False, "reason": why}
    if why.startswith("excluded_purpose:") and governs.notes:
        part["warnings"] = [{"rule": f"{policy.id}.governs", "provision": "", "article": None, "article_verified": False,
                             "pack": policy.id, "message": dict(governs.notes)}]
    return part


def load_composition(paths: Sequence[Any], *, ungoverned: str = "deny", functions: Mapping[str, Any] | None = None,
                     backend: str | None = None) -> Composition:
    """Load the packs in ``paths`` together and compose them.

    Each format-v2 pack's request contract is the core envelope merged with the facts and
    operations of *every* pack listed, so one request can carry them all; two packs declaring a
    fact incompatibly stop the load with a problem naming both.
    """
    from . import _compile
    from ._pack import load_pack

    declarations = [_declaration(Path(p)) for p in paths]
    policies = []
    for i, path in enumerate(paths):
        companions = tuple(d for j, d in enumerate(declarations) if d is not None and j != i)
        pack = load_pack(path, backend=backend or _compile.DEFAULT_BACKEND, functions=functions, companions=companions)
        policies.append(Policy(pack))
    return Composition(policies, ungoverned=ungoverned)


def _declaration(root: Path) -> Any:
    """The facts and operations a v2 pack's pack.yaml declares (None for v1 or an unreadable file:
    loading the pack itself then reports the problem)."""
    from ._facts import declaration_of
    from ._yaml import load_yaml

    path = root / "pack.yaml" if root.is_dir() else root
    if not path.is_file():
        return None
    doc, _ = load_yaml(path, str(path), root if root.is_dir() else None)
    if doc is None:
        return None
    data = doc.data
    if not isinstance(data, dict) or data.get("format") != "facegate/policy/v2" or not isinstance(data.get("pack"), dict):
        return None
    languages = data.get("languages", {}).get("declared", ["en"]) if isinstance(data.get("languages"), dict) else ["en"]
    return declaration_of(doc, str(data["pack"].get("id", root.name)), languages[0] if languages else "en")


def load_configured(config: Mapping[str, Any], base: Any, *, functions: Mapping[str, Any] | None = None) -> Policy | Composition:
    """The operator configuration's ``policy``: one pack folder (a Policy), or a list (a Composition).

    A list always composes, even of one pack, so that ``governs:`` and ``no_governing_pack`` apply.
    """
    from ._config import resolve
    from .policy import load_policy

    spec = config["policy"]
    if isinstance(spec, str):
        return load_policy(resolve(base, spec), functions=functions)
    ungoverned = config.get("composition", {}).get("ungoverned", "deny")
    return load_composition([resolve(base, p) for p in spec], ungoverned=ungoverned, functions=functions)
