"""Fuzzing the running service over HTTP: no 5xx, no hang, and never a permit for invalid input.

Hypothesis generates JSON values, mutations of a permitted request (one field replaced by junk),
raw bytes, content types, query strings and image bytes (truncated and bit-flipped real photos).
Sizes: 120 examples per endpoint family, 6 families (~700 requests, well under a minute here).
"""

from __future__ import annotations

import io
import json
import urllib.parse

import httpx
import jsonschema
import pytest
from fg_service import ALL_SCOPES, CAC, counter_request, face_bytes, make_key, running, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import facegate

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                database=None)
REQUEST_SCHEMA = jsonschema.Draft202012Validator(facegate.load_policy(CAC).request_schema)  # what the served pack validates with

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
FIELDS = sorted(counter_request())


@st.composite
def mutated_requests(draw):
    """A permitted request with one top-level or nested field replaced, removed or added."""
    req = json.loads(json.dumps(counter_request()))
    key = draw(st.sampled_from(FIELDS + ["extra_field"]))
    action = draw(st.sampled_from(["replace", "remove", "nested"]))
    if action == "remove" and key in req:
        del req[key]
    elif action == "nested" and isinstance(req.get(key), dict) and req[key]:
        inner = draw(st.sampled_from(sorted(req[key])))
        req[key][inner] = draw(json_values)
    else:
        req[key] = draw(json_values)
    return req


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    config = write_config(tmp_path_factory.mktemp("fuzz"), limits={"max_image_bytes": 600_000, "max_pixels": 2_000_000,
                                                                   "body_timeout_seconds": 5, "max_batch": 20})
    key = make_key(config, *ALL_SCOPES)
    with running(config) as server, httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def _never_5xx(r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:400]}"


def _no_permit_if_invalid(req, decision: dict) -> None:
    if isinstance(req, dict) and isinstance(req.get("actor"), dict):  # the gallery's count replaces the caller's, as in the gate
        req = {**req, "actor": {**req["actor"], "stored_persons": 0}}
    if not isinstance(req, dict) or not REQUEST_SCHEMA.is_valid(req):
        assert decision["decision"] == "deny", f"invalid request permitted: {req!r}"
        assert decision["reason"] == "invalid_request"


@FUZZ
@given(req=json_values | mutated_requests())
def test_decide_fuzz(svc, req):
    r = svc.post("/v1/decide", content=json.dumps(req), headers={"Content-Type": "application/json"})
    _never_5xx(r)
    assert r.status_code == 200  # any JSON is decided (an invalid request is denied, not refused)
    _no_permit_if_invalid(req, r.json()["decision"])


@FUZZ
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
       ctype=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8", "multipart/form-data"]),
       path=st.sampled_from(["/v1/decide", "/v1/decide/batch", "/v1/consent", "/v1/process"]))
def test_raw_bodies_fuzz(svc, body, ctype, path):
    r = svc.post(path, content=body, headers={"Content-Type": ctype} if ctype else {})
    _never_5xx(r)
    if r.status_code == 200:
        payload = r.json()
        decisions = [d["decision"] for d in payload.get("decisions", [])] or [payload.get("decision") or {}]
        for d in decisions:
            if d:
                assert d["decision"] == "deny", body


@FUZZ
@given(reqs=st.lists(json_values | mutated_requests(), min_size=0, max_size=25))
def test_batch_fuzz(svc, reqs):
    r = svc.post("/v1/decide/batch", json={"requests": reqs})
    _never_5xx(r)
    if r.status_code == 200:
        for req, d in zip(reqs, r.json()["decisions"], strict=True):
            _no_permit_if_invalid(req, d["decision"])
    else:
        assert not 1 <= len(reqs) <= 20


def _corrupt(data: bytes, cut: int, flips: list[int]) -> bytes:
    out = bytearray(data[: max(1, cut)])
    for f in flips:
        out[f % len(out)] ^= 0xFF
    return bytes(out)


PHOTO = face_bytes("obama_small.jpg")
buf = io.BytesIO()
Image.open(io.BytesIO(PHOTO)).save(buf, "PNG")
PHOTO_PNG = buf.getvalue()


@FUZZ
@given(which=st.sampled_from([PHOTO, PHOTO_PNG]), cut=st.integers(min_value=0, max_value=len(PHOTO_PNG)),
       flips=st.lists(st.integers(min_value=0, max_value=10**6), max_size=6), req=mutated_requests() | json_values,
       as_form=st.booleans(), ctype=st.sampled_from(["image/jpeg", "image/png", "image/webp", "image/gif", "application/octet-stream"]))
def test_process_fuzz(svc, which, cut, flips, req, as_form, ctype):
    data = _corrupt(which, cut, flips)
    text = json.dumps(req)
    if as_form:
        r = svc.post("/v1/process", files={"request": (None, text), "image": ("x", data, ctype)})
    else:
        r = svc.post("/v1/process", content=data, headers={"Content-Type": ctype, "Facegate-Request": text.encode("ascii", "replace").decode()})
    _never_5xx(r)
    if r.status_code == 200:
        out = r.json()
        _no_permit_if_invalid(req, out["decision"])
        if out["status"] == "executed":
            assert out["decision"]["decision"] == "permit"


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["since", "until", "provision", "effect", "kind", "after", "limit", "purpose", "top_k"]),
                              st.text(max_size=30), max_size=4),
       path=st.sampled_from(["/v1/audit", "/v1/audit/export", "/v1/consent/x", "/v1/audit/verify", "/v1/packs"]))
def test_query_strings_fuzz(svc, params, path):
    _never_5xx(svc.get(path, params=params))


@FUZZ
@given(body=json_values, ref=st.text(min_size=1, max_size=40).filter(lambda s: s not in (".", "..")))
def test_consent_fuzz(svc, body, ref):
    _never_5xx(svc.post("/v1/consent", content=json.dumps(body), headers={"Content-Type": "application/json"}))
    quoted = urllib.parse.quote(ref, safe="")
    _never_5xx(svc.post(f"/v1/consent/{quoted}/withdraw"))
    _never_5xx(svc.get(f"/v1/consent/{quoted}"))
