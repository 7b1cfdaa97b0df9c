"""The OpenAPI document is the contract: every endpoint's every answer here is checked against it.

Each response is matched to its path template, method and status in ``/openapi.json``; the
status must be documented, the content type declared, and a JSON body must validate against the
declared schema (which for decisions and outcomes *is* the engine's decision/outcome schema).
The test also proves that every documented operation was exercised and that the engine's own
``Decision.to_dict()`` / ``Outcome.to_dict()`` validate against the same schemas.
"""

from __future__ import annotations

import json
import re

import httpx
import jsonschema
import pytest
from fg_service import ALL_SCOPES, CAC, counter_request, face_bytes, make_key, running, write_config
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

import facegate
from facegate import _schema


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class Contract:
    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.registry = Registry().with_resource("urn:facegate:openapi", Resource.from_contents(doc, default_specification=DRAFT202012))
        self.templates = [(path, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")) for path in doc["paths"]]
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, r: httpx.Response) -> httpx.Response:
        method = r.request.method.lower()
        path = next((p for p, rx in self.templates if rx.match(r.request.url.path) and method in self.doc["paths"][p]), None)
        assert path is not None, f"{method} {r.request.url.path} is not in the OpenAPI document"
        responses = self.doc["paths"][path][method]["responses"]
        status = str(r.status_code)
        assert status in responses, f"{method} {path} answered {status}, not documented ({sorted(responses)}): {r.text[:300]}"
        content = responses[status].get("content", {})
        ctype = r.headers.get("content-type", "").split(";")[0]
        assert ctype in content, f"{method} {path} {status}: content type {ctype} not declared ({sorted(content)})"
        if ctype == "application/json" or ctype.endswith("+json"):
            ref = "urn:facegate:openapi#/" + _pointer("paths", path, method, "responses", status, "content", ctype, "schema")
            jsonschema.Draft202012Validator({"$ref": ref}, registry=self.registry).validate(r.json())
        self.seen.add((path, method, status))
        return r


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("contract"), limits={"max_image_bytes": 1_000_000, "max_pixels": 4_000_000})
    key = make_key(config, *ALL_SCOPES)
    with running(config) as server, httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        doc = client.get("/openapi.json").json()
        yield Contract(doc), client, server


def test_the_document_is_openapi_3_1_and_reuses_the_engine_schemas(api):
    contract, _, _ = api
    doc = contract.doc
    assert doc["openapi"].startswith("3.1")
    request = {k: v for k, v in facegate.load_policy(CAC).request_schema.items() if k not in ("$id", "$schema")}
    assert doc["components"]["schemas"]["Request"] == request  # the pack's contract, as decide validates
    decision = dict(_schema.load_schema("decision.v1.json"))
    decision.pop("$id"), decision.pop("$schema")
    assert doc["components"]["schemas"]["Decision"] == decision
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if path not in ("/healthz", "/readyz", "/openapi.json", "/docs", "/docs/ui"):
                assert op.get("security"), f"{method} {path} is open"


def test_every_endpoint_answers_as_documented(api):
    contract, client, _ = api
    c = contract.check
    c(client.get("/healthz"))
    c(client.get("/readyz"))
    c(client.get("/metrics"))
    c(client.get("/v1/packs"))
    c(client.post("/v1/decide", json=counter_request()))
    c(client.post("/v1/decide", json=counter_request(), params={"explain": "true"}))
    c(client.post("/v1/decide", json={"operation": "fly"}))
    c(client.post("/v1/decide", content=b"{", headers={"Content-Type": "application/json"}))
    c(client.post("/v1/decide", content=b"x", headers={"Content-Type": "text/plain"}))
    c(client.post("/v1/decide", json=counter_request(), headers={"Authorization": "Bearer nope"}))
    c(client.post("/v1/decide/batch", json={"requests": [counter_request(), {"operation": 1}]}))
    c(client.post("/v1/decide/batch", json={"requests": []}))
    req = json.dumps(counter_request())
    files = {"request": (None, req), "image": ("a.jpg", face_bytes("obama.jpg"), "image/jpeg"),
             "reference": ("b.jpg", face_bytes("obama2.jpg"), "image/jpeg")}
    out = c(client.post("/v1/process", files=files)).json()
    assert out["status"] == "executed"
    c(client.post("/v1/process", content=face_bytes("obama.jpg"),
                  headers={"Content-Type": "image/jpeg", "Facegate-Request": json.dumps(counter_request(operation="detect"))}))
    c(client.post("/v1/process", json=counter_request(operation="erase")))
    c(client.post("/v1/process", files={"request": (None, req), "image": ("a.jpg", b"nope", "image/jpeg")}))
    c(client.post("/v1/process", content=face_bytes("biden.jpg"), headers={"Content-Type": "image/jpeg", "Facegate-Request": req}))
    c(client.post("/v1/process", content=b"\x00" * 2_000_000, headers={"Content-Type": "image/jpeg", "Facegate-Request": req}))
    grant = {"subject_id": "s-1", "type": "separate", "given_by": "subject", "purposes": ["identity_verification"]}
    c(client.post("/v1/consent", json=grant))
    c(client.post("/v1/consent", json={**grant, "purposes": []}))
    c(client.get("/v1/consent/s-1", params={"purpose": "identity_verification"}))
    c(client.get("/v1/consent/nobody"))
    c(client.post("/v1/consent/s-1/withdraw"))
    c(client.get("/v1/audit", params={"limit": 3}))
    c(client.get("/v1/audit", params={"kind": "decision", "effect": "permit"}))
    c(client.get("/v1/audit", params={"limit": 0}))
    c(client.get("/v1/audit/verify"))
    c(client.get("/v1/audit/export", params={"kind": "outcome"}))
    c(client.post("/v1/admin/reload"))
    c(client.get("/openapi.json"))
    c(client.get("/docs"))
    c(client.get("/docs/ui"))
    documented = {(p, m) for p, item in contract.doc["paths"].items() for m in item}
    assert documented == {(p, m) for p, m, _ in contract.seen}


def test_the_interactive_page_loads_only_vendored_files_served_here(api):
    _, client, _ = api
    page = client.get("/docs/ui")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)=([^ >]+)', page.text)
    assert assets and all(a.startswith("/docs/static/") for a in assets)
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 100, asset
    assert "validatorUrl: null" in client.get("/docs/static/facegate-docs.js").text  # no call to the online validator
    assert "Apache License" in client.get("/docs/static/swagger-ui-LICENSE").text


def test_the_docs_page_needs_no_script_and_lists_every_path(api):
    contract, client, _ = api
    page = client.get("/docs")
    assert "<script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for path in contract.doc["paths"]:
        assert f"<code>{path}</code>" in page.text


def test_the_engine_results_validate_against_the_published_schemas(tmp_path):
    """Decision and Outcome from the Python API, not only the HTTP ones, match the schemas."""
    from facegate.store import SQLiteStore
    from facegate.testing import fake_info, fake_plugin, synthetic_face_image

    registry = facegate.load_plugins((), extra=[("fakes", fake_plugin(fake_info()))])
    resources = Registry().with_resources([(s["$id"], Resource.from_contents(s)) for s in
                                          (_schema.load_schema("decision.v1.json"), _schema.load_schema("outcome.v1.json"))])
    decision_v = jsonschema.Draft202012Validator(_schema.load_schema("decision.v1.json"), registry=resources)
    outcome_v = jsonschema.Draft202012Validator(_schema.load_schema("outcome.v1.json"), registry=resources)
    from facegate.testing._conformance import conformance_policy

    with SQLiteStore(tmp_path / "s.db") as store:
        gate = facegate.Gate(conformance_policy(), "fake", registry=registry, store=store)
        for op in ("detect", "verify", "identify", "enroll", "analyze", "erase"):
            for req in ({"operation": op, "purpose": "other", "subject": {"id": "p1"}, "attributes": ["age"],
                         "storage": {"retention_days": 3}}, {"operation": op}):
                out = gate.process(req, synthetic_face_image())
                outcome_v.validate(out.to_dict())
                decision_v.validate(gate.policy.decide(req, explain=True).to_dict())
