"""The OpenAPI 3.1 document, built from the JSON Schemas the engine validates with.

``Request`` is the loaded pack's request contract (``Policy.request_schema``: the core envelope
plus the facts the pack declares -- the very schema ``decide`` validates with; rebuilt on reload);
``Decision`` and ``Outcome`` are ``decision.v1.json`` and ``outcome.v1.json`` as shipped in the
package -- not copies, not models re-declared in Python -- so the contract cannot drift from what
the engine checks.  The service's own envelopes (receipts,
problems, pages) are declared below.  ``/docs`` renders the same document as one page of HTML
with no script at all, so it works offline and behind any content-security policy.
"""

from __future__ import annotations

import copy
import html
import json
from typing import Any

from .. import __version__, _schema
from ..store._interface import CONSENT_GIVERS, CONSENT_TYPES, PURPOSES
from ._auth import SCOPES


def _engine(name: str) -> dict[str, Any]:
    doc = copy.deepcopy(_schema.load_schema(name))
    for key in ("$schema", "$id"):
        doc.pop(key, None)
    return doc


def _request(schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return _engine("request.v1.json")
    doc = copy.deepcopy(schema)
    for key in ("$schema", "$id"):
        doc.pop(key, None)
    return doc


def _outcome() -> dict[str, Any]:
    doc = _engine("outcome.v1.json")
    doc["properties"]["decision"] = _ref("Decision")  # the engine's relative $ref, resolved inside the document
    return doc


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PROBLEM = {"description": "problem (RFC 9457)", "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _op(summary: str, scope: str | None, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, tag: str = "gate") -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": dict(responses)}
    if scope is not None:
        out["security"] = [{"apiKey": [scope]}]
        out["description"] = f"Needs an API key with scope `{scope}`." if scope else "Needs any valid API key."
        for status in ("401", "403", "429"):
            out["responses"].setdefault(status, _PROBLEM)
    if body is not None:
        out["requestBody"] = {"required": True, "content": body}
        for status in ("400", "408", "413", "415", "422"):
            out["responses"].setdefault(status, _PROBLEM)
    if params:
        out["parameters"] = params
        out["responses"].setdefault("400", _PROBLEM)
    out["responses"].setdefault("503", _PROBLEM)
    return out


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _p(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 200}, "description": description}


FILTERS = [
    _q("since", {"type": "string", "format": "date-time"}, "records at or after this time"),
    _q("until", {"type": "string", "format": "date-time"}, "records before this time"),
    _q("provision", {"type": "string", "maxLength": 200}, "records naming this provision"),
    _q("effect", {"enum": ["permit", "deny"]}, "decision records with this effect"),
    _q("kind", {"type": "string", "pattern": "^[a-z_]{1,40}$"}, "records of this kind: decision, outcome, refusal, consent, console, ..."),
]


def build(request_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document; ``request_schema``: the loaded pack's request contract (core envelope + the facts it declares)."""
    receipt = _obj(["seq", "hash"], seq={"type": "integer", "minimum": 1}, hash={"type": "string", "pattern": "^[0-9a-f]{64}$"})
    schemas: dict[str, Any] = {
        "Request": _request(request_schema),
        "Decision": _engine("decision.v1.json"),
        "Outcome": _outcome(),
        "Receipt": receipt,
        "Problem": {**_obj(["title", "status", "detail"], type={"type": "string"}, title={"type": "string"},
                           status={"type": "integer", "minimum": 400, "maximum": 599}, detail={"type": "string"},
                           request_id={"type": "string"}, limit={"type": "number"}), "additionalProperties": True},
        "DecideResponse": _obj(["decision", "receipt"], decision=_ref("Decision"), receipt=_ref("Receipt")),
        "BatchRequest": _obj(["requests"], requests={"type": "array", "minItems": 1, "items": {"type": "object"},
                                                     "description": "request objects (each validated as Request; an invalid one is denied, not refused)"}),
        "BatchResponse": _obj(["decisions"], decisions={"type": "array", "items": _ref("DecideResponse")}),
        "ProcessResponse": {"allOf": [_ref("Outcome"), _obj(["receipts"], receipts={"type": "array", "items": _ref("Receipt")})]},
        "ProcessForm": {**_obj(["request"], request={"type": "string", "description": "the request, as JSON text"},
                               image={"type": "string", "contentEncoding": "binary", "description": "JPEG, PNG or WebP"},
                               reference={"type": "string", "contentEncoding": "binary", "description": "for verify: the reference photo"}),
                        "additionalProperties": False},
        "ConsentGrant": {**_obj(["subject_id", "type", "given_by", "purposes"], subject_id={"type": "string", "minLength": 1, "maxLength": 200},
                                type={"enum": list(CONSENT_TYPES)}, given_by={"enum": list(CONSENT_GIVERS)},
                                purposes={"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(PURPOSES)}},
                                expires_at={"type": "string", "format": "date-time"}), "additionalProperties": False},
        "ConsentRecord": _obj(["record_id"], record_id={"type": "string"}),
        "ConsentWithdrawn": _obj(["withdrawn"], withdrawn={"type": "array", "items": {"type": "string"}}),
        "ConsentLookup": _obj(["consent"], consent={"oneOf": [{"type": "null"}, {"type": "object"}]}),
        "AuditRow": _obj(["seq", "prev", "hash", "record"], seq={"type": "integer"}, prev={"type": "string"}, hash={"type": "string"},
                         record={"type": "object"}),
        "AuditPage": _obj(["records", "next_after"], records={"type": "array", "items": _ref("AuditRow")},
                          next_after={"type": ["integer", "null"], "description": "pass as `after` for the next page; null at the end"}),
        "VerifyReport": _obj(["ok", "checked", "problems", "head"], ok={"type": "boolean"}, checked={"type": "integer"},
                             problems={"type": "array", "items": {"type": "string"}}, head={"oneOf": [{"type": "null"}, _ref("Receipt")]}),
        "Packs": _obj(["packs"], packs={"type": "array", "items": _obj(["id", "version", "revision"], id={"type": "string"},
                                                                       version={"type": "string"}, revision={"type": "string"})}),
        "Reload": _obj(["reloaded", "message", "revision"], reloaded={"type": "boolean"}, message={"type": "string"}, revision={"type": "string"}),
        "Health": _obj(["status"], status={"type": "string"}, checks={"type": "object"}),
    }
    explain = _q("explain", {"type": "boolean"}, "include the explanation (unmet conditions, remedies)")
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("liveness: the process answers", None, {"200": _json(_ref("Health"), "alive")}, tag="operations")},
        "/readyz": {"get": _op("readiness: pack loaded, store writable, recognizer up", None,
                               {"200": _json(_ref("Health"), "ready")}, tag="operations")},
        "/metrics": {"get": _op("Prometheus metrics", "metrics", {"200": {"description": "exposition format",
                                                                          "content": {"text/plain": {"schema": {"type": "string"}}}}}, tag="operations")},
        "/openapi.json": {"get": _op("this document", None, {"200": _json({"type": "object"}, "OpenAPI 3.1")}, tag="operations")},
        "/docs": {"get": _op("this document as one HTML page, no script", None,
                             {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}, tag="operations")},
        "/docs/ui": {"get": _op("interactive: Swagger UI (vendored, served from here, works offline) on this document", None,
                                {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}, tag="operations")},
        "/v1/decide": {"post": _op("decide one request (audited write-ahead, no recognizer)", "decide",
                                   {"200": _json(_ref("DecideResponse"), "the decision and its audit receipt")},
                                   body={"application/json": {"schema": _ref("Request")}}, params=[explain])},
        "/v1/decide/batch": {"post": _op("decide many requests in one call", "decide",
                                         {"200": _json(_ref("BatchResponse"), "one decision per request, in order")},
                                         body={"application/json": {"schema": _ref("BatchRequest")}}, params=[explain])},
        "/v1/process": {"post": _op("decide and, if permitted, run the operation on the image", "process",
                                    {"200": _json(_ref("ProcessResponse"), "the gate's outcome and the receipts of its audit records")},
                                    body={"multipart/form-data": {"schema": _ref("ProcessForm")},
                                          "image/jpeg": {"schema": {"type": "string", "contentEncoding": "binary"}},
                                          "image/png": {"schema": {"type": "string", "contentEncoding": "binary"}},
                                          "image/webp": {"schema": {"type": "string", "contentEncoding": "binary"}},
                                          "application/json": {"schema": _ref("Request")}},
                                    params=[_q("top_k", {"type": "integer", "minimum": 1, "maximum": 100}, "identify: most matches returned"),
                                            {"name": "Facegate-Request", "in": "header", "required": False, "schema": {"type": "string"},
                                             "description": "with a raw image body: the request as JSON text"}])},
        "/v1/consent": {"post": _op("record a consent", "consent:write", {"201": _json(_ref("ConsentRecord"), "recorded")},
                                    body={"application/json": {"schema": _ref("ConsentGrant")}}, tag="consent")},
        "/v1/consent/{ref}/withdraw": {"post": _op("withdraw a consent record, or every consent of a subject", "consent:write",
                                                   {"200": _json(_ref("ConsentWithdrawn"), "the withdrawn record ids")},
                                                   params=[_p("ref", "consent record id or subject id")], tag="consent")},
        "/v1/consent/{subject_id}": {"get": _op("the consent in force for a subject", "consent:read",
                                                {"200": _json(_ref("ConsentLookup"), "the strongest consent in force, or null")},
                                                params=[_p("subject_id", "the subject"), _q("purpose", {"type": "string", "maxLength": 100}, "for this purpose")],
                                                tag="consent")},
        "/v1/audit": {"get": _op("a page of audit records, oldest first", "audit:read", {"200": _json(_ref("AuditPage"), "one page")},
                                 params=FILTERS + [_q("after", {"type": "integer", "minimum": 0}, "records after this sequence number"),
                                                   _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size (default 100)")],
                                 tag="audit")},
        "/v1/audit/verify": {"get": _op("check the hash chain", "audit:read", {"200": _json(_ref("VerifyReport"), "the report")}, tag="audit")},
        "/v1/audit/export": {"get": _op("the log as JSON Lines (canonical, verifiable offline)", "audit:read",
                                        {"200": {"description": "one record per line",
                                                 "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
                                        params=FILTERS, tag="audit")},
        "/v1/packs": {"get": _op("the loaded packs and their revisions", "", {"200": _json(_ref("Packs"), "loaded packs")}, tag="operations")},
        "/v1/admin/reload": {"post": _op("reload packs and configuration, keeping the running ones if the new ones fail", "admin",
                                         {"200": _json(_ref("Reload"), "reloaded"), "409": _json(_ref("Reload"), "refused: still serving the old revision")},
                                         tag="operations")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "facegate", "version": __version__,
                 "description": "Every face-recognition request decided against regulation-as-code, written ahead to a tamper-evident "
                                "audit log, and executed only if permitted.",
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "fgk_<key id>_<secret>",
                       "description": f"`facegate keys create --scope ...`; scopes: {', '.join(SCOPES)}"}}},
    }


def docs_page(doc: dict[str, Any]) -> str:
    """The API reference as one self-contained HTML page (no script, no external resource)."""
    e = html.escape
    parts = [f"<!doctype html><html lang=en><meta charset=utf-8><title>{e(doc['info']['title'])} API</title>",
             "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "code,pre{font:13px ui-monospace,monospace;background:#f4f4f4}pre{padding:.6rem;overflow:auto}"
             "h2{border-top:1px solid #ccc;padding-top:1rem}.m{font-weight:700;text-transform:uppercase}details{margin:.3rem 0}</style>",
             f"<h1>{e(doc['info']['title'])} {e(doc['info']['version'])} — HTTP API</h1><p>{e(doc['info']['description'])}</p>",
             "<p>Machine-readable: <a href=/openapi.json><code>/openapi.json</code></a> (OpenAPI 3.1); "
             "interactive (try requests with your key): <a href=/docs/ui><code>/docs/ui</code></a>. "
             "Authenticate with <code>Authorization: Bearer fgk_…</code>.</p>"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            parts.append(f"<h2><span class=m>{e(method)}</span> <code>{e(path)}</code></h2><p>{e(op['summary'])}. {e(op.get('description', 'Open: no key needed.'))}</p>")
            for p in op.get("parameters", []):
                parts.append(f"<div>parameter <code>{e(p['name'])}</code> ({e(p['in'])}): {e(p.get('description', ''))}</div>")
            if "requestBody" in op:
                for ctype, media in op["requestBody"]["content"].items():
                    parts.append(f"<details><summary>body <code>{e(ctype)}</code></summary><pre>{e(json.dumps(media['schema'], indent=1))}</pre></details>")
            codes = ", ".join(f"<code>{e(c)}</code> {e(r['description'])}" for c, r in op["responses"].items())
            parts.append(f"<div>responses: {codes}</div>")
            key = ' -H "Authorization: Bearer $FACEGATE_KEY"' if op.get("security") else ""
            curl = f'curl -sS -X {method.upper()}{key} "$FACEGATE_URL{path}"'
            parts.append(f"<pre>{e(curl)}</pre>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(f"<details id={e(name)}><summary><code>{e(name)}</code></summary><pre>{e(json.dumps(schema, indent=1, ensure_ascii=False))}</pre></details>")
    return "".join(parts) + "</html>"


#: ``/docs/ui``: Swagger UI from ``static/`` (vendored with its licence), nothing from elsewhere.
INTERACTIVE_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>facegate API (interactive)</title>"
    "<link rel=stylesheet href=/docs/static/swagger-ui.css><div id=swagger-ui></div>"
    "<script src=/docs/static/swagger-ui-bundle.js></script><script src=/docs/static/facegate-docs.js></script></html>"
)
INTERACTIVE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'")
