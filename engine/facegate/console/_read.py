"""Read: the packs, each provision with the law's text beside its rules, and the REVIEW document."""

from __future__ import annotations

import re
from typing import Any

import yaml
from markupsafe import Markup
from starlette.responses import HTMLResponse, Response

from .._approvals import approved_rules
from .._cases import load_cases
from ..policy import Policy
from ..review import load_questions, render
from ..review._blocks import _fold
from ..review._build import EFFECTS, MODES, _grade_line
from ..review._plain import PlainRenderer
from ..review._render import _html_inline
from ._state import LoadedPack
from ._web import HEADERS, Ctx

_PARAM = re.compile(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)")
_VAR = re.compile(r"\bvariables\.([A-Za-z_][A-Za-z0-9_]*)")
TEXT_META = ("source", "grade", "notes", "note")
LANGUAGE_NAMES = {"zh": "中文 (Chinese)", "en": "English", "de": "Deutsch", "fr": "Français", "ja": "日本語", "ko": "한국어"}


def pack_or_404(ctx: Ctx) -> LoadedPack | Response:
    loaded = ctx.state.pack(ctx.request.path_params["pack"])
    if loaded is None:
        return ctx.page("error.html", status=404, title="No such pack", detail=f"no pack `{ctx.request.path_params['pack']}`")
    if loaded.policy is None:
        return ctx.page("error.html", status=409, title="The pack does not load",
                        detail="; ".join(loaded.problems[:20]) + " — fix the files (facegate check) and reload")
    return loaded


def languages(text: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(code, name, text) for every language the text carries, Chinese and English first."""
    codes = [k for k in text if k not in TEXT_META and isinstance(text[k], str)]
    codes.sort(key=lambda c: (c not in ("zh", "en"), c != "zh", c))
    return [(c, LANGUAGE_NAMES.get(c, c), str(text[c]).strip()) for c in codes]


def _grade_text(grade: Any) -> str:
    if grade is None:
        return "—"
    return str(grade) if isinstance(grade, str) else ", ".join(str(g) for g in grade)


def renderer(loaded: LoadedPack) -> PlainRenderer:
    pack = loaded.policy.pack  # type: ignore[union-attr]
    docs = {v["name"]: _fold(v.get("description") or v["name"].replace("_", " ")) for v in pack.variables}
    return PlainRenderer(pack.parameters, docs)


def plain_html(r: PlainRenderer, text: str) -> Markup:
    return Markup(_html_inline(r.render(text)))


def home(ctx: Ctx) -> Response:
    rows: list[dict[str, Any]] = []
    for p in ctx.state.packs():
        if p.policy is None:
            rows.append({"id": p.id, "problems": p.problems})
            continue
        held = approved_rules(p.policy, ctx.state.approvals(p.policy))
        rep = p.report
        rows.append({"id": p.id, "title": p.policy.pack.meta["title"], "version": p.policy.version, "revision": p.policy.revision,
                     "rules": len(p.policy.rules), "approved": len(held), "provisions": len(p.policy.pack.provisions),
                     "cases": len(rep.results) if rep else 0, "passing": sum(r.passed for r in rep.results) if rep else 0,
                     "coverage": rep.coverage_percent if rep else 0.0, "problems": p.case_error})
    return ctx.page("home.html", packs=rows)


def pack_page(ctx: Ctx) -> Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    policy = loaded.policy
    assert policy is not None
    held = approved_rules(policy, ctx.state.approvals(policy))
    cov = {c.provision: c for c in loaded.report.coverage} if loaded.report else {}
    provisions = []
    for prov in policy.pack.provisions:
        rules = [r for r in policy.rules if r.provision == prov.provision]
        provisions.append({"p": prov, "grade": _grade_text(prov.text.get("grade")), "rules": rules,
                           "approved": sum(r.id in held for r in rules), "coverage": cov.get(prov.provision)})
    meta = policy.pack.meta
    return ctx.page("pack.html", loaded=loaded, policy=policy, meta=meta, provisions=provisions,
                    notice=languages(meta.get("review_notice", {})), report=loaded.report, held=held,
                    history=_history(ctx, policy))


def _history(ctx: Ctx, policy: Policy) -> list[dict[str, Any]]:
    pack_id = policy.id
    out: list[dict[str, Any]] = []
    for row in ctx.state.store.audit.query(kind="console", limit=200, newest_first=True):
        r = row["record"]
        if r.get("pack") == pack_id and r.get("event") in ("rule_saved", "case_saved"):
            out.append({"seq": row["seq"], **r})
    for a in ctx.state.approvals(policy):
        out.append({"seq": a.seq, "time": a.time, "user": a.by, "event": "approved",
                    "rule": a.rule or "(whole pack)", "revision_after": a.revision, "note": a.note})
    out.sort(key=lambda r: -int(r["seq"]))
    return out[:30]


def provision_page(ctx: Ctx) -> Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    policy = loaded.policy
    assert policy is not None
    pid = ctx.request.path_params["provision"]
    prov = next((p for p in policy.pack.provisions if p.provision == pid), None)
    if prov is None:
        return ctx.page("error.html", status=404, title="No such provision", detail=f"pack `{policy.id}` has no provision `{pid}`")
    r = renderer(loaded)
    params = policy.pack.parameter_docs
    variables = {v["name"]: v for v in policy.pack.variables}
    held = approved_rules(policy, ctx.state.approvals(policy))
    rules: list[dict[str, Any]] = []
    for rule in (x for x in policy.rules if x.provision == pid):
        cel = " ".join(c.text for c in (*rule.when, *rule.unless))
        used_vars = sorted(set(_VAR.findall(cel)))
        for name in used_vars:
            cel += " " + str(variables.get(name, {}).get("expression", ""))
        rules.append({
            "rule": rule, "effect": EFFECTS.get(rule.effect, rule.effect), "mode": MODES.get(rule.mode, rule.mode),
            "when": [(plain_html(r, c.text), c.text) for c in rule.when],
            "unless": [(plain_html(r, c.text), c.text) for c in rule.unless],
            "params": [(n, params[n]) for n in sorted(set(_PARAM.findall(cel))) if n in params],
            "variables": [variables[n] for n in used_vars if n in variables],
            "texts": languages(rule.text) if rule.text != prov.text else [],
            "approval": held.get(rule.id),
        })
    report = loaded.report
    root = ctx.state.root_of(policy)
    facts = {c["id"]: c for c, _, _ in load_cases(root)}
    rule_ids = {x["rule"].id for x in rules}
    cases = []
    for res in report.results if report else []:
        determined = {d["rule"] for d in res.decision.determining} & rule_ids
        if pid in res.exercises or determined:
            case = facts.get(res.id, {})
            cases.append({"r": res, "determined": sorted(determined), "expect": case.get("expect", {}),
                          "facts": yaml.safe_dump(case.get("request", {}), allow_unicode=True, sort_keys=False, width=100)})
    coverage = next((c for c in report.coverage if c.provision == pid), None) if report else None
    questions = [q for q in load_questions(root) if pid in q.provisions]
    return ctx.page("provision.html", loaded=loaded, policy=policy, prov=prov, texts=languages(prov.text),
                    grade=_grade_text(prov.text.get("grade")), grade_meaning=_grade_line(policy.pack, prov.text.get("grade")) if prov.text.get("grade") else "",
                    source=prov.text.get("source"), rules=rules, cases=cases, coverage=coverage, questions=questions)


def review_page(ctx: Ctx) -> Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    assert loaded.policy is not None
    _, html = render(loaded.policy, ctx.state.approvals(loaded.policy))
    back = (f'<nav class="console-back" style="font:14px sans-serif;margin:8px 0">'
            f'<a href="{ctx.url("/packs/" + loaded.id)}">← back to the console</a></nav>')
    html = html.replace("<body>", "<body>" + back, 1)
    # the generated document carries its own inline stylesheet and no script
    headers = {**HEADERS, "Content-Security-Policy": HEADERS["Content-Security-Policy"].replace("style-src 'self'", "style-src 'unsafe-inline'")}
    return HTMLResponse(html, headers=headers)
