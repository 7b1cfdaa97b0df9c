"""Evidence: the audit browser -- search, verify the chain, export."""

from __future__ import annotations

import datetime as _dt
import io
import json
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from ..errors import StoreError
from ._web import HEADERS, Ctx

PAGE = 100
SCAN = 5000  # records searched per query when filtering on what the store does not index (reason)


def _filters(ctx: Ctx) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    q = ctx.request.query_params
    shown = {k: q.get(k, "").strip() for k in ("effect", "reason", "provision", "kind", "since", "until", "decision")}
    filters: dict[str, Any] = {}
    problems: list[str] = []
    if shown["effect"] in ("permit", "deny"):
        filters["effect"] = shown["effect"]
    if shown["kind"]:
        filters["kind"] = shown["kind"]
    if shown["provision"]:
        filters["provision"] = shown["provision"]
    if shown["decision"]:
        filters["decision_id"] = shown["decision"]
    for key in ("since", "until"):
        if shown[key]:
            try:
                day = _dt.date.fromisoformat(shown[key])
            except ValueError:
                problems.append(f"`{shown[key]}` is not a date (YYYY-MM-DD)")
                continue
            if key == "until":
                day += _dt.timedelta(days=1)  # the whole day named
            filters[key] = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.UTC)
    return filters, shown, problems


def _rows(ctx: Ctx, filters: dict[str, Any], reason: str, limit: int | None) -> list[dict[str, Any]]:
    audit = ctx.state.store.audit
    if not reason:
        return list(audit.query(**filters, limit=limit, newest_first=True))
    out = []
    for row in audit.query(**filters, limit=SCAN, newest_first=True):
        if row["record"].get("reason") == reason:
            out.append(row)
            if limit is not None and len(out) >= limit:
                break
    return out


def browser(ctx: Ctx) -> Response:
    filters, shown, problems = _filters(ctx)
    rows = [] if problems else _rows(ctx, filters, shown["reason"], PAGE)
    items = []
    for row in rows:
        r = row["record"]
        items.append({"seq": row["seq"], "hash": row["hash"], "time": r.get("time", ""), "kind": r.get("kind", ""),
                      "effect": r.get("effect", ""), "reason": r.get("reason", "") or r.get("event", ""),
                      "provisions": sorted({d.get("provision", "") for d in r.get("determining") or [] if isinstance(d, dict)}),
                      "who": r.get("by") or r.get("user") or "", "body": json.dumps(r, ensure_ascii=False, indent=2, sort_keys=True)})
    verify = None
    if ctx.request.query_params.get("verify"):
        try:
            report = ctx.state.store.audit.verify()
            verify = {"ok": report.ok, "checked": report.checked, "problems": report.problems[:50],
                      "head": None if report.head is None else f"#{report.head.seq} {report.head.hash}"}
        except StoreError as exc:
            verify = {"ok": False, "checked": 0, "problems": [str(exc)], "head": None}
    query = urlencode({k: v for k, v in shown.items() if v})
    return ctx.page("audit.html", items=items, shown=shown, problems=problems, verify=verify, qs=query, limit=PAGE)


def export(ctx: Ctx) -> Response:
    filters, shown, problems = _filters(ctx)
    if problems:
        return ctx.page("error.html", status=400, title="Bad filter", detail="; ".join(problems))
    buf = io.StringIO()
    if shown["reason"]:
        keep = {row["seq"] for row in _rows(ctx, filters, shown["reason"], None)}
        lines = io.StringIO()
        ctx.state.store.audit.export_jsonl(lines, **filters)
        for line in lines.getvalue().splitlines(keepends=True):
            if json.loads(line)["seq"] in keep:
                buf.write(line)
    else:
        ctx.state.store.audit.export_jsonl(buf, **filters)
    ctx.state.record("audit_exported", ctx.user.name if ctx.user else None, filters={k: v for k, v in shown.items() if v})
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="facegate-audit-{stamp}.jsonl"'}
    return Response(buf.getvalue(), media_type="application/x-ndjson", headers=headers)
