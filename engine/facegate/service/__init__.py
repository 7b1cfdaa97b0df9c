"""``facegate serve``: the gate as an HTTP service (ASGI: Starlette on uvicorn).

Layout (one job per module)::

    _app        app factory, the guarded-route wrapper, problems, request ids, access log
    _routes     the thin routes under /v1/ (plus health, metrics, OpenAPI, docs)
    _auth       API keys (hashed), scopes, principals; console users/roles plug in here
    _limits     body/image/pixel/time/concurrency bounds, each a clear 4xx
    _runtime    the loaded gate and settings; reload keeps the last good one
    _metrics    Prometheus metrics
    _logs       logging (plain or JSON lines), request ids, never biometric data
    _openapi    OpenAPI 3.1 from the engine's JSON Schemas, and the no-script docs page
    _server     uvicorn, workers, TLS/mTLS, SIGHUP reload, SIGTERM drain

Threat model and limits: docs/service.md.
"""

from __future__ import annotations

from ._app import Service, create_app
from ._auth import ROLE_SCOPES, SCOPES, KeyStore, Principal, Refusal
from ._runtime import Limits, Settings

__all__ = ["ROLE_SCOPES", "SCOPES", "KeyStore", "Limits", "Principal", "Refusal", "Service", "Settings", "create_app"]
