"""The HTTP routes: translate, authorise (through ``Service.guarded``), call the engine, answer.

No decision is taken here: ``/v1/decide`` goes through ``Gate.decide_async`` (the gate's policy
and evidence, written ahead, nothing run), ``/v1/process`` through ``Gate.process``.  Every response that
carries a decision carries the receipt of its audit record, written before the response.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import re
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import jsonschema
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..store import AuditReceipt
from . import _openapi
from ._app import Service, parse_json, reload_now
from ._auth import Principal
from ._limits import IMAGE_TYPES, HTTPProblem, decode_image, read_body
from ._runtime import Runtime


def _receipt(r: Any) -> dict[str, Any] | None:
    return None if r is None else {"seq": int(r.seq), "hash": str(r.hash)}


def _flag(request: Request, name: str) -> bool:
    if not request.scope.get("query_string"):  # no query at all (the usual decide call): nothing to parse
        return False
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise HTTPProblem(400, "Bad parameter", f"`{name}` must be true or false, not `{value[:20]}`")
    return value in ("true", "1")


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise HTTPProblem(400, "Bad parameter", f"`{name}` must be an integer from {low} to {high}, not `{raw[:20]}`")
    return int(raw)


#: Batch requests decided per group commit (the event loop serves other requests between slices).
_BATCH_SLICE = 64


def routes(svc: Service) -> list[Route | Mount]:
    grant_validator = jsonschema.Draft202012Validator(_openapi.build()["components"]["schemas"]["ConsentGrant"])
    built: dict[str, tuple[dict[str, Any], str]] = {}  # revision -> (document, docs page)

    def document() -> tuple[dict[str, Any], str]:
        rt = svc.runtime
        if rt.revision not in built:
            doc = _openapi.build(rt.request_schema())
            built.clear()
            built[rt.revision] = (doc, _openapi.docs_page(doc))
        return built[rt.revision]

    # -- operations ------------------------------------------------------------------------
    async def healthz(request: Request) -> Response:
        request.scope["facegate.route"] = "/healthz"
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        request.scope["facegate.route"] = "/readyz"
        rt = svc.runtime
        checks = {"pack": f"{rt.gate.policy.id} {rt.revision}", "recognizer": f"{rt.gate.info.id} {rt.gate.info.version}"}
        ok = True
        if svc.draining:
            checks["draining"], ok = "shutting down", False
        db = rt.store.path if hasattr(rt.store, "path") else None
        if db is not None and not os.access(os.path.dirname(os.path.abspath(db)) or ".", os.W_OK):
            checks["store"], ok = f"folder of `{db}` is not writable", False
        else:
            try:
                await run_in_threadpool(rt.audit.head)
                checks["store"] = "writable"
            except Exception as exc:
                checks["store"], ok = f"unavailable: {type(exc).__name__}", False
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503)

    @svc.guarded("metrics", "/metrics")
    async def metrics(request: Request, who: Principal, rt: Runtime) -> Response:
        return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        request.scope["facegate.route"] = "/openapi.json"
        return JSONResponse(document()[0])

    async def docs_ui(request: Request) -> Response:
        request.scope["facegate.route"] = "/docs/ui"
        return HTMLResponse(_openapi.INTERACTIVE_PAGE, headers={"Content-Security-Policy": _openapi.INTERACTIVE_CSP})

    async def docs(request: Request) -> Response:
        request.scope["facegate.route"] = "/docs"
        return HTMLResponse(document()[1], headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    # -- decide ------------------------------------------------------------------------------
    # On the event loop: the decision is a few tens of microseconds of Python, and the wait for its
    # durable record is a future the audit writer resolves (``Gate.decide_async``) -- no thread
    # per request, and every request in flight joins the writer's next group commit.
    def answer(decision: Any, receipt: Any) -> dict[str, Any]:
        svc.metrics.count_decision(decision)
        if receipt is None:  # not on disk, so a deny (Gate.decide fails closed): 503, the client may retry
            why = decision.errors[-1]["error"] if decision.errors else "decision record not written"
            raise HTTPProblem(503, "Audit log unavailable", f"audit log unavailable: {why}", decision=decision.to_dict())
        return {"decision": decision.to_dict(), "receipt": _receipt(receipt)}

    @svc.guarded("decide", "/v1/decide")
    async def decide(request: Request, who: Principal, rt: Runtime) -> Response:
        explain = _flag(request, "explain")
        req = await svc.json_body(request, rt)
        return svc.json_response(answer(*await rt.gate.decide_async(req, explain=explain)))

    @svc.guarded("decide", "/v1/decide/batch")
    async def decide_batch(request: Request, who: Principal, rt: Runtime) -> Response:
        explain = _flag(request, "explain")
        body = await svc.json_body(request, rt)
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list) or set(body) != {"requests"}:
            raise HTTPProblem(422, "Bad batch", "the body must be `{\"requests\": [...]}`")
        reqs = body["requests"]
        limit = rt.settings.limits.max_batch
        if not 1 <= len(reqs) <= limit:
            raise HTTPProblem(413 if reqs else 422, "Bad batch size", f"a batch holds 1 to {limit} requests, not {len(reqs)}", limit=limit)
        out: list[dict[str, Any]] = []
        for start in range(0, len(reqs), _BATCH_SLICE):  # a slice per commit; the loop serves others in between
            decided = await asyncio.gather(*(rt.gate.decide_async(r, explain=explain) for r in reqs[start:start + _BATCH_SLICE]))
            out.extend(answer(decision, receipt) for decision, receipt in decided)
        return svc.json_response({"decisions": out})

    # -- process -----------------------------------------------------------------------------
    @svc.guarded("process", "/v1/process")
    async def process(request: Request, who: Principal, rt: Runtime) -> Response:
        top_k = _int(request, "top_k", 5, 1, 100)
        limits = rt.settings.limits
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        encoded: dict[str, bytes] = {}  # image / reference, decoded in the gate's thread (one trip to the pool)
        if ctype == "multipart/form-data":
            await read_body(request, limits)
            try:
                form = await request.form(max_files=3, max_fields=3, max_part_size=limits.max_image_bytes + 1)
            except HTTPProblem:
                raise
            except Exception as exc:  # Starlette's MultiPartException and python-multipart's parse errors
                raise HTTPProblem(400, "Malformed multipart body", str(exc)[:200]) from None
            try:
                unknown = sorted(set(form.keys()) - {"request", "image", "reference"})
                if unknown:
                    raise HTTPProblem(422, "Unknown form field", f"form field `{unknown[0][:40]}` is not one of request, image, reference")
                raw = form.get("request")
                if raw is None:
                    raise HTTPProblem(422, "Missing request", "the form needs a `request` field (JSON text)")
                text = raw if isinstance(raw, str) else await raw.read()
                req = parse_json(text.encode() if isinstance(text, str) else text)
                for name in ("image", "reference"):
                    part = form.get(name)
                    if part is None:
                        continue
                    if isinstance(part, str):
                        raise HTTPProblem(422, "Image must be a file", f"form field `{name}` must be a file part")
                    encoded[name] = await part.read()
            finally:
                await form.close()
        elif ctype in IMAGE_TYPES:
            header = request.headers.get("facegate-request")
            if header is None:
                raise HTTPProblem(422, "Missing request", "a raw image body needs the request as JSON in the `Facegate-Request` header")
            req = parse_json(header.encode("latin-1"))
            encoded["image"] = await read_body(request, limits, cap=limits.max_image_bytes)
        elif ctype == "application/json":
            req = parse_json(await read_body(request, limits))
        else:
            raise HTTPProblem(415, "Unsupported media type",
                              f"send multipart/form-data, {', '.join(IMAGE_TYPES)} or application/json, not `{ctype or 'nothing'}`")

        def run() -> dict[str, Any]:
            # Decoding first (a bad image is a 4xx before any decision), then the gate, in one thread:
            # each trip between the event loop and the pool is a wake-up, slow on a busy machine.
            image, reference = (decode_image(encoded[name], limits, field=name) if name in encoded else None
                                for name in ("image", "reference"))
            started = time.perf_counter()
            with rt.audit.collect() as receipts:
                outcome = rt.gate.process(req, image, reference=reference, top_k=top_k)
            return {"outcome": outcome, "receipts": list(receipts), "seconds": time.perf_counter() - started}

        done = await run_in_threadpool(run)
        elapsed = done["seconds"]
        outcome = done["outcome"]
        op = req.get("operation") if isinstance(req, dict) and isinstance(req.get("operation"), str) else "other"
        op = op if op in ("detect", "verify", "identify", "enroll", "analyze", "erase") else "other"
        svc.metrics.count_decision(outcome.decision)
        svc.metrics.gate_seconds.labels(op, outcome.status).observe(elapsed)
        if outcome.status == "executed":
            svc.metrics.recognizer_seconds.labels(op).observe(max(0.0, elapsed - outcome.decision.duration_us / 1e6))
        if not done["receipts"]:  # the decision record was not written: the gate denied; say the log is down
            raise HTTPProblem(503, "Audit log unavailable", outcome.error or "decision record not written", outcome=outcome.to_dict())
        body = outcome.to_dict()
        body["receipts"] = [_receipt(r) for r in done["receipts"]]
        return JSONResponse(body)

    # -- consent -----------------------------------------------------------------------------
    def consent_registry(rt: Runtime) -> Any:
        if rt.gate.consent is None:
            raise HTTPProblem(404, "No consent registry", "this service's store has no consent registry")
        return rt.gate.consent

    @svc.guarded("consent:write", "/v1/consent")
    async def consent_grant(request: Request, who: Principal, rt: Runtime) -> Response:
        body = await svc.json_body(request, rt)
        problems = sorted(grant_validator.iter_errors(body), key=lambda e: list(map(str, e.path)))
        if problems:
            where = "/".join(map(str, problems[0].absolute_path))
            raise HTTPProblem(422, "Bad consent", f"at /{where}: {problems[0].message}"[:300])
        expires = body.get("expires_at")
        if expires is not None:
            try:
                if _dt.datetime.fromisoformat(expires).tzinfo is None:
                    raise ValueError("no UTC offset")
            except ValueError as exc:
                raise HTTPProblem(422, "Bad consent", f"`expires_at` must be an ISO-8601 time with an offset: {exc}") from None
        registry = consent_registry(rt)
        record_id = await run_in_threadpool(lambda: registry.grant(body["subject_id"], type=body["type"], given_by=body["given_by"],
                                                                   purposes=body["purposes"], expires_at=expires))
        return JSONResponse({"record_id": record_id}, status_code=201)

    @svc.guarded("consent:write", "/v1/consent/{ref}/withdraw")
    async def consent_withdraw(request: Request, who: Principal, rt: Runtime) -> Response:
        registry = consent_registry(rt)
        try:
            ids = await run_in_threadpool(registry.withdraw, request.path_params["ref"])
        except (ValueError, TypeError) as exc:
            raise HTTPProblem(422, "Bad consent reference", str(exc)) from None
        return JSONResponse({"withdrawn": list(ids)})

    @svc.guarded("consent:read", "/v1/consent/{subject_id}")
    async def consent_lookup(request: Request, who: Principal, rt: Runtime) -> Response:
        registry = consent_registry(rt)
        purpose = request.query_params.get("purpose")
        try:
            found = await run_in_threadpool(registry.lookup, request.path_params["subject_id"], purpose)
        except (ValueError, TypeError) as exc:
            raise HTTPProblem(422, "Bad consent look-up", str(exc)) from None
        return JSONResponse({"consent": found})

    # -- audit -------------------------------------------------------------------------------
    def filters(request: Request) -> dict[str, Any]:
        """The audit filters, checked here: the store reports a bad filter like a failure (503)."""
        out: dict[str, Any] = {}
        for name in ("since", "until"):
            value = request.query_params.get(name)
            if value is None:
                continue
            try:
                when = _dt.datetime.fromisoformat(value)
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                raise HTTPProblem(400, "Bad filter", f"`{name}` must be an ISO-8601 time with an offset, not `{value[:40]}`")
            out[name] = when
        effect = request.query_params.get("effect")
        if effect is not None and effect not in ("permit", "deny"):
            raise HTTPProblem(400, "Bad filter", f"`effect` must be permit or deny, not `{effect[:40]}`")
        kind = request.query_params.get("kind")  # decision, outcome, refusal, consent, console, ...: the log's own kinds
        if kind is not None and re.fullmatch(r"[a-z_]{1,40}", kind) is None:
            raise HTTPProblem(400, "Bad filter", f"`kind` must be a record kind such as decision or outcome, not `{kind[:40]}`")
        out.update({k: v for k, v in (("effect", effect), ("kind", kind)) if v is not None})
        if "provision" in request.query_params:
            out["provision"] = request.query_params["provision"][:200]
        return out

    @svc.guarded("audit:read", "/v1/audit")
    async def audit_page(request: Request, who: Principal, rt: Runtime) -> Response:
        after = _int(request, "after", 0, 0, 2**62)
        limit = _int(request, "limit", 100, 1, 1000)
        wanted = filters(request)

        def page() -> dict[str, Any]:
            rows = []
            for row in rt.audit.query(**wanted):
                if row["seq"] <= after:
                    continue
                rows.append(row)
                if len(rows) > limit:
                    break
            more = len(rows) > limit
            rows = rows[:limit]
            return {"records": rows, "next_after": rows[-1]["seq"] if more else None}

        return JSONResponse(await run_in_threadpool(page))

    @svc.guarded("audit:read", "/v1/audit/verify")
    async def audit_verify(request: Request, who: Principal, rt: Runtime) -> Response:
        report = await run_in_threadpool(rt.audit.verify)
        head = report.head if isinstance(report.head, AuditReceipt) else None
        return JSONResponse({"ok": report.ok, "checked": report.checked, "problems": list(report.problems), "head": _receipt(head)})

    @svc.guarded("audit:read", "/v1/audit/export")
    async def audit_export(request: Request, who: Principal, rt: Runtime) -> Response:
        wanted = filters(request)
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, mode="w+", encoding="utf-8")

        def write() -> None:
            rt.audit.export_jsonl(spool, **wanted)
            spool.seek(0)

        try:
            await run_in_threadpool(write)
        except BaseException:
            spool.close()
            raise

        def lines() -> Any:
            with spool:
                yield from iter(lambda: spool.read(65536).encode("utf-8"), b"")

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # -- packs and reload ----------------------------------------------------------------------
    @svc.guarded("", "/v1/packs")
    async def packs(request: Request, who: Principal, rt: Runtime) -> Response:
        return JSONResponse({"packs": rt.packs()})

    @svc.guarded("admin", "/v1/admin/reload")
    async def admin_reload(request: Request, who: Principal, rt: Runtime) -> Response:
        ok, message = await reload_now(svc)
        supervisor = os.environ.get("FACEGATE_SUPERVISOR_PID")
        if ok and supervisor and supervisor.isdigit():  # the other workers reload on the supervisor's SIGHUP
            os.kill(int(supervisor), signal.SIGHUP)
        return JSONResponse({"reloaded": ok, "message": message, "revision": svc.runtime.revision}, status_code=200 if ok else 409)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/ui", docs_ui, methods=["GET"]),
        Mount("/docs/static", app=StaticFiles(directory=str(Path(__file__).parent / "static")), name="docs-static"),
        Route("/v1/decide", decide, methods=["POST"]),
        Route("/v1/decide/batch", decide_batch, methods=["POST"]),
        Route("/v1/process", process, methods=["POST"]),
        Route("/v1/consent", consent_grant, methods=["POST"]),
        Route("/v1/consent/{ref}/withdraw", consent_withdraw, methods=["POST"]),
        Route("/v1/consent/{subject_id}", consent_lookup, methods=["GET"]),
        Route("/v1/audit", audit_page, methods=["GET"]),
        Route("/v1/audit/verify", audit_verify, methods=["GET"]),
        Route("/v1/audit/export", audit_export, methods=["GET"]),
        Route("/v1/packs", packs, methods=["GET"]),
        Route("/v1/admin/reload", admin_reload, methods=["POST"]),
    ]

