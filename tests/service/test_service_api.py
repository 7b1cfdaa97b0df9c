"""The service over real HTTP: every endpoint, its scope, its receipts, and its answers to bad input."""

from __future__ import annotations

import io
import json
import socket
import time

import httpx
import pytest
from fg_service import ALL_SCOPES, counter_request, face_bytes, make_key, running, write_config
from PIL import Image

LIMITS = {"max_body_bytes": 2_000_000, "max_image_bytes": 1_000_000, "max_pixels": 4_000_000,
          "body_timeout_seconds": 1.5, "per_key_concurrency": 2, "max_batch": 50}


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("svc"), limits=LIMITS)
    keys = {scope: make_key(config, scope) for scope in ALL_SCOPES}
    keys["all"] = make_key(config, *ALL_SCOPES)
    with running(config) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield server, client, keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def audit_rows(client, keys, **params):
    rows, after = [], 0
    while True:
        page = client.get("/v1/audit", params={**params, "after": after, "limit": 200}, headers=auth(keys["audit:read"])).json()
        rows += page["records"]
        if page["next_after"] is None:
            return rows
        after = page["next_after"]


def test_health_is_open_and_readiness_names_the_pack(svc):
    _, client, _ = svc
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["pack"].startswith("cn-cac-2023-draft sha256:")
    assert ready.json()["checks"]["store"] == "writable"


PROTECTED = [
    ("POST", "/v1/decide", "decide"), ("POST", "/v1/decide/batch", "decide"), ("POST", "/v1/process", "process"),
    ("POST", "/v1/consent", "consent:write"), ("POST", "/v1/consent/x/withdraw", "consent:write"),
    ("GET", "/v1/consent/x", "consent:read"), ("GET", "/v1/audit", "audit:read"), ("GET", "/v1/audit/verify", "audit:read"),
    ("GET", "/v1/audit/export", "audit:read"), ("POST", "/v1/admin/reload", "admin"), ("GET", "/metrics", "metrics"),
]


@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
def test_every_endpoint_checks_its_scope_and_refusals_are_audited(svc, method, path, scope):
    _, client, keys = svc
    assert client.request(method, path).status_code == 401
    assert client.request(method, path, headers=auth("fgk_000000000000_" + "A" * 43)).status_code == 401
    other = next(k for s, k in keys.items() if s not in (scope, "all"))
    refused = client.request(method, path, headers=auth(other))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "missing_scope" and scope in refused.json()["detail"]
    request_id = refused.headers["x-request-id"]
    records = [r["record"] for r in audit_rows(client, keys, kind="refusal")]
    assert any(r["request_id"] == request_id and r["reason"] == "missing_scope" and r["scope"] == scope for r in records)
    assert all("fgk_" not in json.dumps(r) for r in records)  # the key itself never reaches the log


def test_decide_returns_the_decision_with_the_receipt_of_its_audit_record(svc):
    _, client, keys = svc
    r = client.post("/v1/decide", json=counter_request(), headers=auth(keys["decide"]))
    assert r.status_code == 200
    body = r.json()
    assert body["decision"]["decision"] == "permit"
    packs = client.get("/v1/packs", headers=auth(keys["decide"])).json()["packs"]
    assert body["decision"]["policy"]["revision"] == packs[0]["revision"]
    rows = audit_rows(client, keys, kind="decision")
    mine = [row for row in rows if row["record"]["decision_id"] == body["decision"]["decision_id"]]
    assert [(m["seq"], m["hash"]) for m in mine] == [(body["receipt"]["seq"], body["receipt"]["hash"])]
    assert mine[0]["record"]["request"]["subject"]["id"].startswith("hmac-sha256:")  # masked, as the gate's records are


def test_an_invalid_request_is_denied_and_still_audited(svc):
    _, client, keys = svc
    body = client.post("/v1/decide", json={"operation": "verify", "purpose": "x"}, headers=auth(keys["decide"])).json()
    assert body["decision"]["decision"] == "deny" and body["decision"]["reason"] == "invalid_request"
    assert body["receipt"]["seq"] >= 1


def test_batch_decides_each_request_in_order(svc):
    _, client, keys = svc
    reqs = [counter_request(), counter_request(capture={"mode": "remote"}), {"operation": 5}]
    out = client.post("/v1/decide/batch", json={"requests": reqs}, headers=auth(keys["decide"])).json()["decisions"]
    assert [d["decision"]["decision"] for d in out] == ["permit", "deny", "deny"]
    seqs = [d["receipt"]["seq"] for d in out]
    assert len(set(seqs)) == 3
    too_many = client.post("/v1/decide/batch", json={"requests": [counter_request()] * 51}, headers=auth(keys["decide"]))
    assert too_many.status_code == 413


def test_process_verifies_real_photos_with_onnx_multipart(svc):
    _, client, keys = svc
    req = json.dumps(counter_request())
    same = client.post("/v1/process", headers=auth(keys["process"]),
                       files={"request": (None, req), "image": ("a.jpg", face_bytes("obama.jpg"), "image/jpeg"),
                              "reference": ("b.jpg", face_bytes("obama2.jpg"), "image/jpeg")})
    other = client.post("/v1/process", headers=auth(keys["process"]),
                        files={"request": (None, req), "image": ("a.jpg", face_bytes("obama.jpg"), "image/jpeg"),
                               "reference": ("b.jpg", face_bytes("biden.jpg"), "image/jpeg")})
    assert same.status_code == other.status_code == 200, (same.text, other.text)
    s, o = same.json(), other.json()
    assert s["status"] == o["status"] == "executed"
    assert s["result"]["same_person"] is True and o["result"]["same_person"] is False
    assert s["result"]["score"] > o["result"]["score"]
    assert len(s["receipts"]) == 2  # the decision record, then the outcome record


def test_process_takes_the_request_as_a_file_part_too(svc):
    """``curl -F request=@request.json`` sends the request as a file part, not a text field."""
    _, client, keys = svc
    r = client.post("/v1/process", headers=auth(keys["process"]),
                    files={"request": ("request.json", json.dumps(counter_request(operation="detect")).encode(), "application/json"),
                           "image": ("a.jpg", face_bytes("obama.jpg"), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "executed"


def test_process_takes_a_raw_image_body_with_the_request_in_a_header(svc):
    _, client, keys = svc
    r = client.post("/v1/process", content=face_bytes("obama.jpg"), headers={
        **auth(keys["process"]), "Content-Type": "image/jpeg", "Facegate-Request": json.dumps(counter_request(operation="detect"))})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "executed" and len(r.json()["result"]["faces"]) == 1


def test_a_denied_process_request_never_runs(svc):
    _, client, keys = svc
    r = client.post("/v1/process", content=face_bytes("obama.jpg"), headers={
        **auth(keys["process"]), "Content-Type": "image/jpeg", "Facegate-Request": json.dumps(counter_request(capture={"mode": "remote"}))})
    assert r.status_code == 200
    assert r.json()["status"] == "denied" and r.json()["result"] is None


def test_consent_grant_lookup_withdraw_and_the_gate_uses_the_registry(svc):
    _, client, keys = svc
    grant = {"subject_id": "walk-in-7", "type": "separate", "given_by": "subject", "purposes": ["identity_verification"]}
    assert client.post("/v1/consent", json=grant, headers=auth(keys["consent:read"])).status_code == 403
    r = client.post("/v1/consent", json=grant, headers=auth(keys["consent:write"]))
    assert r.status_code == 201
    record_id = r.json()["record_id"]
    found = client.get("/v1/consent/walk-in-7", params={"purpose": "identity_verification"}, headers=auth(keys["consent:read"])).json()
    assert found["consent"]["record_id"] == record_id
    req = counter_request(subject={"id": "walk-in-7", "age": 30, "declined_face": False})
    del req["consent"]
    assert client.post("/v1/decide", json=req, headers=auth(keys["decide"])).json()["decision"]["decision"] == "permit"
    out = client.post("/v1/consent/walk-in-7/withdraw", headers=auth(keys["consent:write"])).json()
    assert out["withdrawn"] == [record_id]
    assert client.post("/v1/decide", json=req, headers=auth(keys["decide"])).json()["decision"]["decision"] == "deny"
    bad = client.post("/v1/consent", json={**grant, "type": "verbal"}, headers=auth(keys["consent:write"]))
    assert bad.status_code == 422


def test_audit_pages_verify_and_export_agree(svc):
    _, client, keys = svc
    for _ in range(3):
        client.post("/v1/decide", json=counter_request(), headers=auth(keys["decide"]))
    first = client.get("/v1/audit", params={"limit": 2}, headers=auth(keys["audit:read"])).json()
    assert len(first["records"]) == 2 and first["next_after"] == first["records"][-1]["seq"]
    rows = audit_rows(client, keys)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    report = client.get("/v1/audit/verify", headers=auth(keys["audit:read"])).json()
    assert report["ok"] and report["checked"] >= len(rows)
    export = client.get("/v1/audit/export", headers=auth(keys["audit:read"]))
    assert export.headers["content-type"].startswith("application/x-ndjson")
    from facegate.store import verify_lines

    lines = export.text.splitlines()
    assert len(lines) >= len(rows)
    assert verify_lines(lines).ok
    assert client.get("/v1/audit", params={"since": "yesterday"}, headers=auth(keys["audit:read"])).status_code == 400


def test_revoking_a_key_takes_effect_without_restart(svc):
    server, client, _ = svc
    key = make_key(server.config, "decide")
    assert client.post("/v1/decide", json=counter_request(), headers=auth(key)).status_code == 200
    from facegate.cli import main

    assert main(["keys", "revoke", "--config", str(server.config), key.split("_")[1]]) == 0
    r = client.post("/v1/decide", json=counter_request(), headers=auth(key))
    assert r.status_code == 401 and r.json()["reason"] == "revoked_key"


# -- bad input: a clear 4xx, never a 5xx ------------------------------------------------------------

def test_wrong_content_types_are_415(svc):
    _, client, keys = svc
    assert client.post("/v1/decide", content=b"operation=detect", headers={**auth(keys["decide"]), "Content-Type": "text/plain"}).status_code == 415
    assert client.post("/v1/process", content=b"GIF89a", headers={**auth(keys["process"]), "Content-Type": "image/gif"}).status_code == 415


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b'{"a": NaN}', b'{"a": 1e999}', b"[" * 100_000])
def test_malformed_json_is_400(svc, body):
    _, client, keys = svc
    r = client.post("/v1/decide", content=body, headers={**auth(keys["decide"]), "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_a_body_over_the_limit_is_413_before_it_is_read(svc):
    _, client, keys = svc
    r = client.post("/v1/decide", content=b" " * 2_000_001, headers={**auth(keys["decide"]), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["limit"] == 2_000_000


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, "PNG")
    return buf.getvalue()


def test_pixel_count_is_checked_before_decoding(svc):
    _, client, keys = svc
    huge = _png(2500, 2000)  # 5 megapixels in a few kilobytes: a decompression bomb in miniature
    assert len(huge) < 100_000
    r = client.post("/v1/process", content=huge, headers={**auth(keys["process"]), "Content-Type": "image/png",
                                                          "Facegate-Request": json.dumps(counter_request(operation="detect"))})
    assert r.status_code == 413 and "pixels" in r.json()["detail"]


@pytest.mark.parametrize("data", [b"\xff\xd8\xff\xe0garbage", face_bytes("obama.jpg")[:5000], b""])
def test_undecodable_images_are_422_and_never_permitted(svc, data):
    _, client, keys = svc
    r = client.post("/v1/process", headers=auth(keys["process"]),
                    files={"request": (None, json.dumps(counter_request(operation="detect"))), "image": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == 422, r.text
    assert "permit" not in r.text


def _slow_body(port: int, key: str, declared: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST /v1/decide HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {declared}\r\n\r\n{{".encode())
    return s


def test_a_slow_client_gets_408(svc):
    server, _, keys = svc
    s = _slow_body(server.port, keys["decide"], 100)
    s.settimeout(30)
    try:
        answer = s.recv(4096).decode()
    finally:
        s.close()
    assert answer.startswith("HTTP/1.1 408")


def test_per_key_concurrency_is_bounded_with_429(svc):
    server, client, keys = svc
    key = make_key(server.config, "decide")
    held = [_slow_body(server.port, key, 100) for _ in range(2)]  # two requests in flight (the limit)
    try:
        for _ in range(500):  # until the server has taken both held requests in (polling, not timing)
            metrics = client.get("/metrics", headers=auth(keys["metrics"])).text
            if "facegate_requests_in_flight 3.0" in metrics:  # the two held + this scrape
                break
            time.sleep(0.002)
        r = client.post("/v1/decide", json=counter_request(), headers=auth(key))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
    finally:
        for s in held:
            s.close()
    for _ in range(200):  # the slots are freed when the held requests end
        r = client.post("/v1/decide", json=counter_request(), headers=auth(key))
        if r.status_code == 200:
            break
        time.sleep(0.02)
    assert r.status_code == 200


def test_metrics_count_decisions_by_effect_reason_and_provision(svc):
    _, client, keys = svc
    d = client.post("/v1/decide", json={"operation": "detect", "purpose": "access_control"}, headers=auth(keys["decide"])).json()["decision"]
    assert d["decision"] == "deny" and d["determining"]
    text = client.get("/metrics", headers=auth(keys["metrics"])).text
    for provision in {det["provision"] for det in d["determining"]}:
        assert f'facegate_decisions_total{{effect="deny",provision="{provision}",reason="{d["reason"]}"}}' in text
    for name in ("facegate_http_request_duration_seconds_bucket", "facegate_audit_queue_depth", "facegate_worker_restarts",
                 "facegate_recognizer_seconds", "facegate_refusals_total", "facegate_rejected_input_total"):
        assert name in text


def test_logs_carry_request_ids_and_no_subject_data(svc):
    server, client, keys = svc
    r = client.post("/v1/decide", json=counter_request(), headers={**auth(keys["decide"]), "X-Request-Id": "trace-abc-123"})
    assert r.headers["x-request-id"] == "trace-abc-123"
    log = server.wait_output("[trace-abc-123] POST /v1/decide 200")
    assert "[trace-abc-123] POST /v1/decide 200" in log
    assert "customer-eileen" not in log and "walk-in-7" not in log and "fgk_" not in log
