"""The decide path's speed-ups change nothing a client, an operator or an auditor sees.

* ``ServiceApp`` answers POST /v1/decide and /v1/decide/batch without Starlette's router: every
  answer (success, refusal, bad input, wrong method, an unexpected exception) is the router's.
* Metric samples tallied and handed over later give prometheus_client's own numbers.
* Batched log lines come out complete, in order, errors at once, in pipe-sized writes.
* The coalescing transport sends a step's writes as one, in order, before any close.
"""

from __future__ import annotations

import asyncio
import io
import logging

import httpx
import pytest
from fg_service import counter_request, make_key, write_config
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from starlette.applications import Starlette

from facegate.service import _logs, create_app
from facegate.service._http import CoalescingTransport
from facegate.service._metrics import _LATENCY, Metrics, _observe_many
from facegate.store import SQLiteStore


@pytest.fixture
def app_and_keys(tmp_path):
    config = write_config(tmp_path / "svc")
    keys = {"decide": make_key(config, "decide"), "audit": make_key(config, "audit:read")}
    app = create_app(config)
    yield app, keys, config
    app.state.service.holder.close()


def _via_router(app):
    """The same app with every request through Starlette's middleware and router (the old path)."""

    async def asgi(scope, receive, send):
        await Starlette.__call__(app, scope, receive, send)

    return asgi


async def _call(asgi, method, path, *, key=None, body=None, ctype="application/json", rid="rid-1"):
    headers = {"X-Request-Id": rid, "Content-Type": ctype}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://svc") as client:
        return await client.request(method, path, content=body, headers=headers)


_CASES = [
    ("POST", "/v1/decide", "decide", counter_request()),
    ("POST", "/v1/decide?explain=true", "decide", counter_request()),
    ("POST", "/v1/decide?explain=maybe", "decide", counter_request()),
    ("POST", "/v1/decide/batch", "decide", {"requests": [counter_request()] * 3}),
    ("POST", "/v1/decide/batch", "decide", {"requests": []}),
    ("POST", "/v1/decide", None, counter_request()),
    ("POST", "/v1/decide", "audit", counter_request()),
    ("POST", "/v1/decide", "decide", b"{not json"),
    ("POST", "/v1/decide", "decide", "text/plain"),
    ("GET", "/v1/decide", "decide", None),
]


def _comparable(r: httpx.Response) -> tuple:
    body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
    if isinstance(body, dict):  # what differs between two decisions: ids, times, receipts
        for d in [body.get("decision")] + [x.get("decision") for x in body.get("decisions", [])]:
            if isinstance(d, dict):
                for k in ("decision_id", "evaluated_at", "duration_us"):
                    d.pop(k, None)
        body.pop("receipt", None)
        for x in body.get("decisions", []):
            x.pop("receipt", None)
    headers = {k: v for k, v in r.headers.items() if k not in ("content-length",)}
    return r.status_code, headers, body


@pytest.mark.parametrize(("method", "path", "who", "body"), _CASES)
def test_direct_routes_answer_exactly_as_the_router(app_and_keys, method, path, who, body):
    app, keys, _ = app_and_keys
    assert set(app.direct) == {("POST", "/v1/decide"), ("POST", "/v1/decide/batch")}
    ctype = "application/json"
    if body == "text/plain":
        body, ctype = b"{}", "text/plain"
    raw = body if isinstance(body, bytes) or body is None else httpx.Request("POST", "http://x", json=body).content
    key = keys.get(who) if who else None
    direct = asyncio.run(_call(app, method, path, key=key, body=raw, ctype=ctype))
    routed = asyncio.run(_call(_via_router(app), method, path, key=key, body=raw, ctype=ctype))
    assert _comparable(direct) == _comparable(routed)
    assert direct.headers["x-request-id"] == "rid-1"


def test_a_middleware_added_later_switches_the_direct_routes_off(app_and_keys):
    app, keys, _ = app_and_keys
    seen = []

    class Seeing:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            seen.append(scope.get("path"))
            await self.inner(scope, receive, send)

    app.add_middleware(Seeing)
    assert app.direct == {}
    r = asyncio.run(_call(app, "POST", "/v1/decide", key=keys["decide"], body=httpx.Request("POST", "http://x", json=counter_request()).content))
    assert r.status_code == 200 and seen == ["/v1/decide"]


def test_refusals_on_the_direct_route_are_audited(app_and_keys):
    app, keys, config = app_and_keys
    r = asyncio.run(_call(app, "POST", "/v1/decide", key=keys["audit"], body=b"{}", rid="refused-1"))
    assert r.status_code == 403 and r.json()["reason"] == "missing_scope"
    with SQLiteStore(config.parent / "facegate.db") as store:
        records = [row["record"] for row in store.audit.query(kind="refusal")]
    assert any(x["request_id"] == "refused-1" and x["route"] == "/v1/decide" for x in records)


def test_an_unexpected_error_on_the_direct_route_reaches_the_server_as_on_the_router(app_and_keys, monkeypatch):
    app, keys, _ = app_and_keys

    async def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(app.state.service.runtime.gate, "decide_async", broken)
    for asgi in (app, _via_router(app)):  # uvicorn logs it and answers 500, whichever path raised it
        with pytest.raises(RuntimeError, match="bug"):
            asyncio.run(_call(asgi, "POST", "/v1/decide", key=keys["decide"], body=b"{}"))
    assert app.state.service.metrics.in_flight == 0


def test_tallied_metrics_are_what_observing_each_sample_gives():
    values = [0.0, 0.0004, 0.0005, 0.00050001, 0.001, 0.0123, 0.02, 2.5, 29.9, 30.0, 31.0, 1e6] * 3
    texts = []
    for many in (True, False):
        registry = CollectorRegistry()
        h = Histogram("x_seconds", "x", ("route",), buckets=_LATENCY, registry=registry)
        child = h.labels("/v1/decide")
        if many:
            _observe_many(child, values)
        else:
            for v in values:
                child.observe(v)
        lines = generate_latest(registry).decode().splitlines()
        texts.append({line.rpartition(" ")[0]: float(line.rpartition(" ")[2]) for line in lines
                      if not line.startswith("#") and "_created" not in line})
    sums = [t.pop('x_seconds_sum{route="/v1/decide"}') for t in texts]
    assert texts[0] == texts[1] and texts[0]['x_seconds_bucket{le="0.0005",route="/v1/decide"}'] == 9.0
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)  # one exact sum of the batch vs a running sum


def test_metrics_reach_prometheus_on_refresh_and_count_in_flight():
    m = Metrics(audit_pending=lambda: 0)

    class D:
        effect, reason, duration_us = "deny", "no_rule", 12
        determining = ({"provision": "B"}, {"provision": "A"}, {"provision": "A"})

    m.count_decision(D())
    m.count_decision(D())
    m.observe_request("/v1/decide", "POST", 200, 0.003)
    m.in_flight = 2
    text = m.render().decode()
    for provision in ("A", "B"):
        assert f'facegate_decisions_total{{effect="deny",provision="{provision}",reason="no_rule"}} 2.0' in text
    assert 'facegate_http_request_duration_seconds_count{method="POST",route="/v1/decide",status="200"} 1.0' in text
    assert "facegate_decide_seconds_count 2.0" in text and "facegate_requests_in_flight 2.0" in text


class _Writes(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes: list[str] = []

    def write(self, text):
        self.writes.append(text)
        return super().write(text)


def _record(level, msg):
    return logging.LogRecord("facegate.service", level, __file__, 1, msg, None, None)


def test_batched_log_lines_leave_complete_in_order_and_errors_at_once():
    stream = _Writes()
    handler = _logs.BatchedStream(stream, max_lines=1000)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for i in range(3):
        handler.handle(_record(logging.INFO, f"line {i}"))
    assert stream.getvalue() == ""  # held
    handler.handle(_record(logging.ERROR, "boom"))  # written at once, after the lines before it
    assert stream.getvalue() == "line 0\nline 1\nline 2\nboom\n"
    long = "x" * 1000
    for i in range(20):
        handler.handle(_record(logging.INFO, f"{i:02d}{long}"))
    handler.flush()
    later = stream.writes[1:]
    assert all(len(w.encode()) <= 4096 and w.endswith("\n") for w in later) and len(later) >= 5
    assert "".join(later).splitlines() == [f"{i:02d}{long}" for i in range(20)]


def test_a_full_batch_is_written_without_waiting_for_the_timer():
    stream = _Writes()
    handler = _logs.BatchedStream(stream, max_lines=4)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for i in range(4):
        handler.handle(_record(logging.INFO, str(i)))
    assert stream.getvalue() == "0\n1\n2\n3\n"


class _FakeTransport:
    def __init__(self):
        self.events: list = []

    def write(self, data):
        self.events.append(("write", data))

    def close(self):
        self.events.append(("close",))

    def abort(self):
        self.events.append(("abort",))

    def get_write_buffer_size(self):
        return 0

    def is_closing(self):
        return False


def test_the_writes_of_one_step_leave_as_one_in_order():
    async def run():
        raw = _FakeTransport()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b"body")
        assert raw.events == [] and t.get_write_buffer_size() == 23 and t.is_closing() is False
        await asyncio.sleep(0)
        assert raw.events == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody")]
        t.write(b"next")
        t.close()  # what was written goes out before the close
        await asyncio.sleep(0)
        assert raw.events[1:] == [("write", b"next"), ("close",)]
        t.write(b"dropped")
        t.abort()
        await asyncio.sleep(0)
        assert raw.events[3:] == [("abort",)]

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_images_decode_to_the_pixels_of_transposing_and_converting_always(mode):
    """``decode_image`` skips the transpose of an upright image and the conversion of an RGB one:
    every EXIF orientation (none, 1-8, an invalid 9) and mode gives ``exif_transpose(...).convert("RGB")``."""
    import numpy as np
    from PIL import Image, ImageOps

    from facegate.service._limits import decode_image
    from facegate.service._runtime import Limits

    base = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert(mode)
    for orientation in range(10):
        exif = Image.Exif()
        if orientation:
            exif[0x0112] = orientation
        buf = io.BytesIO()
        base.save(buf, format="PNG", exif=exif.tobytes())
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))).convert("RGB"))
        got = decode_image(buf.getvalue(), Limits())
        assert got.dtype == np.uint8 and got.shape == expected.shape and (got == expected).all(), orientation
