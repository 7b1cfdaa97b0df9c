"""The decide path's fast parts keep its contract: JSON read exactly as ``json.loads`` reads it, receipts
from shared commits, a deny and 503 when the record cannot be written, keys revoked at once."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fg_service import counter_request, make_key, write_config

from facegate.service import create_app
from facegate.service._app import parse_json
from facegate.service._limits import HTTPProblem


@pytest.mark.parametrize("text", [
    '{"a": 123456789012345678901234567890}',  # beyond 64 bits: orjson would read a float
    '{"a": -98765432109876543210, "b": 1.5}',
    '{"a": "\\ud800"}',  # a lone surrogate: orjson refuses it, json.loads reads it
    '{"a": 1, "a": 2}',
    '{"a": [1, 2.5, -0, -0.0, 1e308, "x", null, true]}',
    '"just a string"',
])
def test_bodies_are_read_as_json_loads_reads_them(text):
    got = parse_json(text.encode())
    assert got == json.loads(text) and json.dumps(got) == json.dumps(json.loads(text))  # same types, not only equal numbers


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": 1e400}', '[Infinity]', "{", "\xff", "[" * 5000 + "]" * 5000])
def test_bad_json_is_a_400(text):
    with pytest.raises(HTTPProblem) as err:
        parse_json(text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff")
    assert err.value.status == 400


@pytest.fixture
def app_and_key(tmp_path):
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide")
    app = create_app(config)
    yield app, key
    app.state.service.holder.close()


async def _post(app, key, path, body):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
        return await client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})


def test_batch_decisions_share_commits_and_each_has_its_own_receipt(app_and_key):
    app, key = app_and_key
    log = app.state.service.runtime.store.audit
    commits = log.commits
    r = asyncio.run(_post(app, key, "/v1/decide/batch", {"requests": [counter_request()] * 150}))
    assert r.status_code == 200
    receipts = [d["receipt"] for d in r.json()["decisions"]]
    assert [x["seq"] for x in receipts] == sorted({x["seq"] for x in receipts}) and len(receipts) == 150  # in request order
    assert log.commits - commits < 150
    rows = {row["seq"]: row["hash"] for row in log.query()}
    assert all(rows[x["seq"]] == x["hash"] for x in receipts) and log.verify().ok
    text = app.state.service.metrics.render().decode()  # the group-commit ratio, as /metrics shows it
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("facegate_audit_")}
    assert values["facegate_audit_records"] >= 150 and 1 <= values["facegate_audit_commits"] < values["facegate_audit_records"]


def test_an_unwritable_log_is_a_503_and_a_deny(app_and_key):
    app, key = app_and_key
    app.state.service.runtime.store.audit.close()  # the writer is gone: nothing can be made durable
    r = asyncio.run(_post(app, key, "/v1/decide", counter_request()))
    assert r.status_code == 503
    body = r.json()
    assert body["decision"]["decision"] == "deny" and body["decision"]["reason"] == "audit_unavailable" and "receipt" not in body


def test_a_revoked_key_is_refused_on_the_next_call_though_keys_are_cached(app_and_key, tmp_path):
    from facegate.service import KeyStore

    app, key = app_and_key
    assert asyncio.run(_post(app, key, "/v1/decide", counter_request())).status_code == 200
    assert asyncio.run(_post(app, key, "/v1/decide", counter_request())).status_code == 200  # now from the cache
    other = KeyStore(tmp_path / "svc" / "keys.db")  # `facegate keys revoke` in another process
    assert other.revoke(key.split("_")[1])
    other.close()
    r = asyncio.run(_post(app, key, "/v1/decide", counter_request()))
    assert r.status_code == 401 and r.json()["reason"] == "revoked_key"


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes or stays silent."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        try:
            s.sendall(data)
        except OSError:  # the server may close while we are still sending the oversized head
            pass
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return out
            if not chunk:
                return out
            out += chunk


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_both_parsers_bound_the_request_head_and_serve_big_bodies(tmp_path, http):
    from fg_service import running

    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide")
    with running(config, extra=("--http", http)) as server:
        huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 200_000 + b"\r\n\r\n"
        answer = _raw(server.port, huge)
        assert answer.split(b"\r\n", 1)[0] in (b"HTTP/1.1 431 Request Header Fields Too Large", b"HTTP/1.1 400 Bad Request"), answer[:100]
        padded = dict(counter_request(), padding="p" * 300_000)  # a big body in the same reads as its head: not a head
        body = json.dumps({"requests": [padded]}).encode()
        ok = _raw(server.port, (f"POST /v1/decide/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n"
                                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        assert ok.startswith(b"HTTP/1.1 200"), ok[:200]
        two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert _raw(server.port, two).count(b"HTTP/1.1 200") == 2  # pipelined requests each start a fresh head count
