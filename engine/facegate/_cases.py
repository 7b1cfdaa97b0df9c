"""``facegate test``: run a pack's case files and measure per-provision coverage.

A case asserts the decision, the exact set of determining rules and the exact set of errored
rules (optionally obligations and warnings).  A provision is *covered* when some passing case
shows it decisive -- one of its forbid rules determines a deny, one of its obligations attaches,
or (for a provision that grants permits) a case exercising it is denied for want of a permit --
and some passing case that ``exercises`` it shows it not decisive (the boundary, or an exception
the law grants).
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from . import _schema
from ._diagnose import did_you_mean
from ._yaml import YamlDocument, load_yaml
from .errors import PolicyError, Problem
from .policy import Decision, Policy, _RequestChecker

CASE_GLOBS = ("cases/*.yaml", "cases/*.yml")


@dataclass
class CaseResult:
    id: str
    file: str
    line: int | None
    passed: bool
    failures: list[str]
    decision: Decision
    exercises: tuple[str, ...]
    seconds: float
    description: str = ""


@dataclass
class Coverage:
    provision: str
    enforceable: bool
    decisive_cases: list[str] = field(default_factory=list)
    boundary_cases: list[str] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        return (not self.enforceable) or (bool(self.decisive_cases) and bool(self.boundary_cases))


@dataclass
class Report:
    policy: Policy
    results: list[CaseResult]
    coverage: list[Coverage]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results) and all(c.covered for c in self.coverage) and bool(self.results)

    @property
    def coverage_percent(self) -> float:
        enforceable = [c for c in self.coverage if c.enforceable]
        if not enforceable:
            return 100.0
        return 100.0 * sum(c.covered for c in enforceable) / len(enforceable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": {"id": self.policy.id, "version": self.policy.version, "revision": self.policy.revision},
            "passed": self.passed,
            "cases": [
                {"id": r.id, "file": r.file, "line": r.line, "passed": r.passed, "failures": r.failures,
                 "decision": r.decision.effect, "determining": [d["rule"] for d in r.decision.determining]}
                for r in self.results
            ],
            "coverage": {
                "percent": round(self.coverage_percent, 1),
                "provisions": [
                    {"provision": c.provision, "enforceable": c.enforceable, "covered": c.covered,
                     "decisive_cases": c.decisive_cases, "boundary_cases": c.boundary_cases}
                    for c in self.coverage
                ],
            },
        }

    def junit_xml(self) -> str:
        failures = sum(not r.passed for r in self.results)
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<testsuite name={quoteattr("facegate:" + self.policy.id)} tests="{len(self.results) + len(self.coverage)}" '
            f'failures="{failures + sum(not c.covered for c in self.coverage)}">',
        ]
        for r in self.results:
            lines.append(f'  <testcase classname={quoteattr(r.file)} name={quoteattr(r.id)} time="{r.seconds:.6f}">')
            if not r.passed:
                lines.append(f'    <failure message={quoteattr(r.failures[0])}>{escape(chr(10).join(r.failures))}</failure>')
            lines.append("  </testcase>")
        for c in self.coverage:
            lines.append(f'  <testcase classname="coverage" name={quoteattr(c.provision)}>')
            if not c.covered:
                lines.append(f'    <failure message={quoteattr(coverage_gap(c))}/>')
            lines.append("  </testcase>")
        lines.append("</testsuite>")
        return "\n".join(lines) + "\n"


def coverage_gap(c: Coverage) -> str:
    missing = []
    if not c.decisive_cases:
        missing.append("a case where it is decisive (determines a deny or attaches a duty)")
    if not c.boundary_cases:
        missing.append("a case that `exercises` it where it is not decisive (boundary or exception)")
    return f"provision `{c.provision}` needs " + " and ".join(missing)


def _case_docs(root: Path) -> tuple[list[YamlDocument], list[Problem]]:
    problems: list[Problem] = []
    docs: list[YamlDocument] = []
    base = root if root.is_dir() else root.parent
    files = [p for g in CASE_GLOBS for p in sorted(base.glob(g))]
    for path in files:
        doc, found = load_yaml(path, str(path.relative_to(base.parent)) if base.parent in path.parents else str(path), base)
        problems.extend(found)
        if doc is None:
            continue
        schema_problems = [doc.problem(p, m) for p, m in _schema.violations("cases.v1.json", doc.data)]
        problems.extend(schema_problems)
        if not schema_problems:
            docs.append(doc)
    return docs, problems


def load_cases(root: Path) -> list[tuple[dict[str, Any], str, int | None]]:
    cases: list[tuple[dict[str, Any], str, int | None]] = []
    docs, problems = _case_docs(root)
    seen: dict[str, str] = {}
    for doc in docs:
        for i, case in enumerate(doc.data["cases"]):
            if case["id"] in seen:
                problems.append(doc.problem(f"/cases/{i}/id", f"case id `{case['id']}` is already used in `{seen[case['id']]}`"))
            seen[case["id"]] = doc.path
            cases.append((case, doc.path, doc.locate(f"/cases/{i}")[0]))
    if problems:
        raise PolicyError(problems)
    return cases


def check_cases(policy: Policy, root: Path | None = None) -> list[Problem]:
    """Every problem in a pack's case files, without running them: structure, duplicate ids,
    provisions and rules the pack does not have, obligation types that do not exist, and request
    facts outside the pack's request contract."""
    docs, problems = _case_docs(root or policy.pack.root)
    provisions = [p.provision for p in policy.pack.provisions]
    rules = [r.id for r in policy.rules]
    duties = list(_schema.load_schema("policy.v1.json")["properties"]["rules"]["items"]["properties"]["obligations"]["items"]["properties"]["type"]["enum"])
    checker = _RequestChecker(policy.request_schema)
    seen: dict[str, str] = {}
    for doc in docs:
        for i, case in enumerate(doc.data["cases"]):
            ptr = f"/cases/{i}"
            if case["id"] in seen:
                problems.append(doc.problem(ptr + "/id", f"case id `{case['id']}` is already used in `{seen[case['id']]}`"))
            seen[case["id"]] = doc.path
            for j, pid in enumerate(case.get("exercises", [])):
                if pid not in provisions:
                    problems.append(doc.problem(f"{ptr}/exercises/{j}", f"case `{case['id']}`: unknown provision `{pid}`{did_you_mean(pid, provisions)}"))
            for key, known, what in (("determining", rules, "rule"), ("errors", rules, "rule"), ("warnings", rules, "rule"), ("obligations", duties, "obligation type")):
                for j, name in enumerate(case["expect"].get(key, [])):
                    if name not in known:
                        problems.append(doc.problem(f"{ptr}/expect/{key}/{j}", f"case `{case['id']}`: unknown {what} `{name}`{did_you_mean(name, known)}"))
            for v in checker.violations(case["request"]):
                problems.append(doc.problem(f"{ptr}/request{v['pointer']}", f"case `{case['id']}`: request {v['message']}"))
    return problems


def _same(label: str, expected: list[str], actual: list[str]) -> list[str]:
    if sorted(expected) == sorted(actual):
        return []
    return [f"{label}: expected {sorted(expected)}, got {sorted(actual)}"]


def run_case(policy: Policy, case: dict[str, Any]) -> tuple[Decision, list[str]]:
    at = _dt.datetime.fromisoformat(case["at"]) if "at" in case else None
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=_dt.UTC)
    decision = policy.decide(case["request"], at=at)
    expect = case["expect"]
    failures: list[str] = []
    if decision.effect != expect["decision"]:
        failures.append(f"decision: expected {expect['decision']}, got {decision.effect} ({decision.reason})")
    failures += _same("determining", expect["determining"], [d["rule"] for d in decision.determining])
    failures += _same("errors", expect["errors"], [e["rule"] for e in decision.errors])
    if "obligations" in expect:
        failures += _same("obligations", expect["obligations"], [o["type"] for o in decision.obligations])
    if "warnings" in expect:
        failures += _same("warnings", expect["warnings"], [w["rule"] for w in decision.warnings])
    if decision.violations:
        failures += [f"request invalid at `{v['pointer'] or '/'}`: {v['message']}" for v in decision.violations]
    return decision, failures


def decisive_provisions(policy: Policy, result: CaseResult) -> set[str]:
    """Provisions that made a difference to this case's decision."""
    d = result.decision
    rule_prov = {r.id: r.provision for r in policy.rules}
    duty_rules = {r.id for r in policy.rules if r.effect == "obligation"}
    out: set[str] = set()
    if d.effect == "deny":
        out |= {rule_prov[x["rule"]] for x in d.determining if x["rule"] in rule_prov}
        if d.reason == "no_permit":
            granting = {r.provision for r in policy.rules if r.effect == "permit" and r.mode == "enforce"}
            out |= {p for p in result.exercises if p in granting}
    out |= {s["provision"] for o in d.obligations for s in o["sources"] if s["rule"] in duty_rules}
    return out


def run_pack_tests(policy: Policy, root: Path | None = None) -> Report:
    cases = load_cases(root or policy.pack.root)
    results: list[CaseResult] = []
    for case, file, line in cases:
        t0 = time.perf_counter()
        decision, failures = run_case(policy, case)
        known = {p.provision for p in policy.pack.provisions}
        failures += [f"exercises unknown provision `{p}`" for p in case.get("exercises", ()) if p not in known]
        results.append(CaseResult(case["id"], file, line, not failures, failures, decision,
                                  tuple(case.get("exercises", ())), time.perf_counter() - t0, case.get("description", "")))
    coverage = [Coverage(p.provision, p.enforceable) for p in policy.pack.provisions]
    by_id = {c.provision: c for c in coverage}
    for r in results:
        if not r.passed:
            continue
        decisive = decisive_provisions(policy, r)
        for prov in decisive:
            if prov in by_id:
                by_id[prov].decisive_cases.append(r.id)
        for prov in r.exercises:
            if prov in by_id and prov not in decisive:
                by_id[prov].boundary_cases.append(r.id)
    return Report(policy, results, coverage)
