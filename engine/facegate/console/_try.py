"""Try: the playground -- a request built in a form, decided and explained; "save as case"."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import yaml
from starlette.responses import Response

from .._cases import load_cases
from ..errors import PolicyError
from ..policy import Decision, Policy
from ._editing import SAVE_LOCK, fingerprint, pack_dir
from ._forms import fields, request_from, request_schema, values_of
from ._read import pack_or_404, plain_html, renderer
from ._state import LoadedPack
from ._web import Ctx

CASE_FILE = "cases/console-saved.yaml"
_CASE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,80}$")
_HEADER = """# yaml-language-server: $schema=../../../engine/facegate/schemas/cases.v1.json
#
# Cases saved from the console's playground ("save as case"): the request as tried and the
# decision the pack gave it then.  Edit freely; `facegate test` runs them with the others.
format: facegate/cases/v1
cases:
"""


def remedies(policy: Policy, request: dict[str, Any], decision: Decision) -> list[dict[str, Any]] | None:
    """What would change a deny, from the explanations work (``facegate.explain.find_remedies``).

    SEAM: ``None`` (the page says "not available in this build") while this build has no
    ``facegate.explain.find_remedies``; otherwise each remedy as ``{"changes": [plain words...],
    "decision": effect}`` -- every one re-decided to a permit by the explanations work.
    """
    if decision.permitted:
        return []
    try:
        from ..explain import find_remedies  # type: ignore[import-not-found,attr-defined,unused-ignore]
    except ImportError:
        return None
    report = find_remedies(policy, request)
    out = []
    for remedy in report.remedies:
        changes = [str(c.get("plain") or f"{c.get('fact')}: {c.get('from')} → {c.get('to')}") for c in remedy.get("changes", [])]
        out.append({"changes": changes, "decision": remedy.get("decision", {}).get("effect", "")})
    return out


def _explain(loaded: LoadedPack, decision: Decision) -> dict[str, Any]:
    policy = loaded.policy
    assert policy is not None
    r = renderer(loaded)
    by_id = {x.id: x for x in policy.rules}
    blocked = []
    for b in (decision.explanation or {}).get("blocked_permits", []):
        blocked.append({**b, "unmet_plain": [(plain_html(r, c), c) for c in b["unmet"]],
                        "excepted_plain": [(plain_html(r, c), c) for c in b["excepted_by"]],
                        "title": by_id[b["rule"]].title if b["rule"] in by_id else ""})
    rules = []
    for rid, info in (decision.explanation or {}).get("rules", {}).items():
        if info["outcome"] == "not_applicable" and by_id[rid].effect != "permit":
            continue
        rules.append({"id": rid, "provision": by_id[rid].provision, **info,
                      "when_plain": [(plain_html(r, w["condition"]), w) for w in info["when"]],
                      "unless_plain": [(plain_html(r, u["condition"]), u) for u in info["unless"]]})
    return {"blocked": blocked, "rules": rules}


def playground(ctx: Ctx) -> Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    policy = loaded.policy
    assert policy is not None
    form_fields = fields(request_schema(policy))
    values: dict[str, Any] = {}
    cases = [c for c, _, _ in load_cases(pack_dir(policy))]
    chosen = ctx.request.query_params.get("case")
    result = None
    problems: list[str] = []
    request: dict[str, Any] | None = None
    if ctx.form is not None:
        raw_json = str(ctx.form.get("request_json") or "").strip()
        if raw_json:
            try:
                request = json.loads(raw_json)
            except json.JSONDecodeError as exc:
                problems.append(f"the JSON request does not parse: {exc}")
        else:
            request, problems = request_from(ctx.form, form_fields)
        if request is not None and not problems:
            values = values_of(request) if isinstance(request, dict) else {}
            decision = policy.decide(request, explain=True)
            result = {"d": decision, "explained": _explain(loaded, decision), "remedies": remedies(policy, request, decision),
                      "request_json": json.dumps(request, ensure_ascii=False, indent=2)}
    elif chosen:
        case = next((c for c in cases if c["id"] == chosen), None)
        if case is not None:
            values = values_of(case["request"])
    return ctx.page("try.html", loaded=loaded, policy=policy, fields=form_fields, values=values, cases=cases,
                    chosen=chosen, result=result, problems=problems, provisions=[p.provision for p in policy.pack.provisions])


def save_case(ctx: Ctx) -> Response:
    loaded = pack_or_404(ctx)
    if not isinstance(loaded, LoadedPack):
        return loaded
    policy = loaded.policy
    assert policy is not None
    form = ctx.form
    case_id = str(form.get("case_id") or "").strip()
    if not _CASE_ID.match(case_id):
        return ctx.page("error.html", status=400, title="Case not saved",
                        detail=f"case id `{case_id}` must be 3-81 lowercase letters, digits and dashes")
    try:
        request = json.loads(str(form.get("request_json") or ""))
    except json.JSONDecodeError as exc:
        return ctx.page("error.html", status=400, title="Case not saved", detail=f"the request does not parse: {exc}")
    known = {p.provision for p in policy.pack.provisions}
    exercises = [p for p in form.getlist("exercises") if p in known]
    decision = policy.decide(request)
    case: dict[str, Any] = {"id": case_id}
    if form.get("description"):
        case["description"] = str(form.get("description"))
    if exercises:
        case["exercises"] = exercises
    case["request"] = request
    case["expect"] = {"decision": str(decision.effect), "determining": sorted(d["rule"] for d in decision.determining),
                      "errors": sorted(e["rule"] for e in decision.errors)}
    root = pack_dir(policy)
    path = root / CASE_FILE
    item = yaml.safe_dump([case], allow_unicode=True, sort_keys=False, width=100)
    item = "".join("  " + line if line.strip() else line for line in item.splitlines(keepends=True))
    with SAVE_LOCK:
        old = path.read_text(encoding="utf-8") if path.exists() else None
        path.parent.mkdir(exist_ok=True)
        new = (old if old is not None else _HEADER)
        new = new + ("" if new.endswith("\n") else "\n") + item
        tmp = path.with_name(f".{path.name}.console-tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
        try:
            load_cases(root)
        except PolicyError as exc:  # e.g. the id is taken: put the file back as it was
            if old is None:
                path.unlink()
            else:
                path.write_text(old, encoding="utf-8")
            return ctx.page("error.html", status=400, title="Case not saved", detail="; ".join(str(p) for p in exc.problems))
        after = fingerprint(root)
    ctx.state.record("case_saved", ctx.user.name if ctx.user else None, pack=policy.id, case=case_id,
                     file=CASE_FILE, revision_after=after, expect=case["expect"])
    return ctx.redirect(f"/packs/{policy.id}/try?case={case_id}&saved=1")
