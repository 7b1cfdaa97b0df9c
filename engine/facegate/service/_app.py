"""The app factory: one :class:`Service` (runtime, keys, limits, metrics) behind a Starlette app.

Routes (``_routes``) stay thin: they translate HTTP to the engine's calls and back.  Everything
they share -- authentication and scope checks, refusal auditing, per-key concurrency, problem
responses, request ids, access logs and latency metrics -- is here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import itertools
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._json_in import NotJSON, read_json
from ..errors import FacegateError
from . import _logs
from ._auth import Authenticator, KeyStore, Principal, Refusal, authorize, key_authenticator
from ._limits import HTTPProblem, KeyConcurrency, read_body
from ._metrics import Metrics
from ._runtime import Holder, Runtime

Handler = Callable[[Request, Principal, Runtime], Awaitable[Response]]


class Service:
    """State shared by every route of one app."""

    def __init__(self, config_path: str | Path, *, worker_restarts: int = 0) -> None:
        self.holder = Holder(config_path)
        self.keys = KeyStore(self.holder.current.settings.keys_path)
        #: Tried in order; the console (issue 18) appends its session authenticator here.
        self.authenticators: list[Authenticator] = [key_authenticator(self.keys)]
        self.concurrency = KeyConcurrency()
        self.metrics = Metrics(audit_pending=lambda: self.holder.current.audit.pending, worker_restarts=worker_restarts,
                               audit_counts=lambda: (self.holder.current.audit.appended, self.holder.current.audit.commits))
        self.draining = False

    @property
    def runtime(self) -> Runtime:
        return self.holder.current

    # -- the one wrapper every protected route goes through -----------------------------------
    def guarded(self, scope: str, route: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        """Authenticate, check ``scope`` (``""``: any valid principal), bound concurrency, map errors."""

        def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                request.scope["facegate.route"] = route
                found = authorize(request, self.authenticators, scope) if scope else _any(request, self.authenticators)
                if isinstance(found, Refusal):
                    return await self.refuse(request, found, scope, route)
                request.scope["facegate.key"] = found.id
                runtime = self.runtime  # one generation for the whole request, even across a reload
                try:
                    self.concurrency.acquire(found.id, runtime.settings.limits.per_key_concurrency)
                except HTTPProblem as exc:
                    return self.problem_response(request, exc)
                try:
                    return await handler(request, found, runtime)
                except HTTPProblem as exc:
                    return self.problem_response(request, exc)
                except FacegateError as exc:  # the store or a plugin failed: the service is not able, the input was fine
                    _logs.log.error("engine error: %s", type(exc).__name__, extra={"event": "engine_error"})
                    return self.problem_response(request, HTTPProblem(503, "Service unavailable", str(exc)))
                finally:
                    self.concurrency.release(found.id)

            endpoint.__name__ = route
            return endpoint

        return wrap

    async def refuse(self, request: Request, refusal: Refusal, scope: str, route: str) -> Response:
        """Answer 401/403 and write the refusal to the audit log (who, what, why; never the key)."""
        self.metrics.refusals.labels(refusal.reason).inc()
        record = {"kind": "refusal", "time": _dt.datetime.now(_dt.UTC).isoformat(), "route": route,
                  "method": request.method, "scope": scope or "any", "reason": refusal.reason,
                  "principal": refusal.principal.id if refusal.principal else None, "request_id": _logs.request_id.get()}
        try:
            await run_in_threadpool(self.runtime.audit.append, record)
        except Exception as exc:  # the refusal stands either way; say that it is not on record
            _logs.log.error("refusal not audited: %s", exc, extra={"event": "refusal_unaudited"})
        _logs.log.info("refused %s", refusal.reason, extra={"event": "refused", "key": record["principal"]})
        headers = {"WWW-Authenticate": 'Bearer realm="facegate"'} if refusal.status == 401 else None
        return self.problem_response(request, HTTPProblem(refusal.status, "Unauthorized" if refusal.status == 401 else "Forbidden",
                                                          refusal.message, reason=refusal.reason), headers=headers)

    def problem_response(self, request: Request, exc: HTTPProblem, headers: dict[str, str] | None = None) -> Response:
        if 400 <= exc.status < 500 and exc.status not in (401, 403):
            self.metrics.rejected.labels(str(exc.status)).inc()
        body = {"type": "about:blank", "title": exc.title, "status": exc.status, "detail": exc.detail,
                "request_id": _logs.request_id.get(), **exc.extra}
        extra = dict(headers or {})
        if exc.status == 429:
            extra["Retry-After"] = "1"
        return Response(orjson.dumps(body), status_code=exc.status, media_type="application/problem+json", headers=extra)

    @staticmethod
    def json_response(body: Any, status: int = 200) -> Response:
        """JSON encoded by orjson (a twentieth of ``json.dumps``' time for a decision; same JSON values)."""
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    async def json_body(self, request: Request, runtime: Runtime) -> Any:
        """The body as JSON: 415 for another content type, 400 for malformed or non-finite JSON."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise HTTPProblem(415, "Unsupported media type", f"expected `application/json`, got `{ctype or 'nothing'}`")
        return parse_json(await read_body(request, runtime.settings.limits))


def _any(request: Request, authenticators: list[Authenticator]) -> Principal | Refusal:
    from ._auth import authenticate

    return authenticate(request, authenticators)


def parse_json(body: bytes) -> Any:
    """The body as JSON, read exactly as ``json.loads`` reads it (:mod:`facegate._json_in`: orjson
    where it reads the same), or a 400 saying why."""
    try:
        return read_json(body)
    except NotJSON as exc:
        raise HTTPProblem(400, "Malformed JSON", f"the body {exc}") from None


_ID_PREFIX = uuid.uuid4().hex[:16]  # per process: ids stay unique across workers and restarts
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    """A unique request id (32 hex digits) without a system call per request, unlike ``uuid4``."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class _RequestIds:
    """ASGI middleware: a request id (the client's ``X-Request-Id`` if sane), an access log line, latency."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else _new_request_id()
        token = _logs.request_id.set(rid)
        started = time.perf_counter()
        status = [500]
        metrics = self.service.metrics
        metrics.in_flight += 1

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.in_flight -= 1
            elapsed = time.perf_counter() - started
            route = scope.get("facegate.route") or ("unmatched" if status[0] == 404 else scope["path"][:40])
            metrics.observe_request(route, scope["method"], status[0], elapsed)
            _logs.access(scope["method"], route, status[0], elapsed, scope.get("facegate.key"))
            _logs.request_id.reset(token)


class ServiceApp(Starlette):
    """The Starlette app, with the hot routes answered without Starlette's middleware and routing.

    ``POST /v1/decide`` and ``/v1/decide/batch`` go straight to their endpoints -- the same
    ``Service.guarded`` functions the router would call, inside the same request-id, access-log
    and metrics middleware -- skipping the error and exception middleware, the route table and
    the per-route wrappers, a fifth of a decide answer's Python.  Nothing else changes for them:
    an unexpected exception still reaches uvicorn, which logs it and answers 500, as Starlette's
    error middleware does.  Every other request, and the lifespan, goes through Starlette.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.direct: dict[tuple[str, str], Any] = {}

    def add_middleware(self, *args: Any, **kwargs: Any) -> None:
        """A middleware added later must see every request: the direct routes are switched off."""
        self.direct = {}
        super().add_middleware(*args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            direct = self.direct.get((scope["method"], scope["path"]))
            if direct is not None:
                scope["app"] = self
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _direct(endpoint: Callable[[Request], Awaitable[Response]], service: Service) -> Any:
    """``endpoint`` as an ASGI app inside :class:`_RequestIds` (what the router and ``request_response`` do, minus the search)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return _RequestIds(app, service)


#: Routes ``ServiceApp`` answers directly (POST only; any other method goes through the router's 405).
DIRECT_ROUTES = ("/v1/decide", "/v1/decide/batch")

#: Extra route providers, each ``provider(service) -> list of routes``: the console (issue 18) appends
#: one that mounts ``/console`` and reuses ``service.authenticators`` and ``Service.guarded``.
ROUTE_PROVIDERS: list[Callable[[Service], list[Any]]] = []


def create_app(config_path: str | Path, *, worker_restarts: int = 0, install_signals: bool = False) -> Starlette:
    """The facegate service for the operator configuration at ``config_path`` (with its ``service:`` section).

    ``install_signals``: reload on SIGHUP (the server does this; tests that embed the app need not).
    """
    from ._routes import routes

    service = Service(config_path, worker_restarts=worker_restarts)
    extra = [route for provider in ROUTE_PROVIDERS for route in provider(service)]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if install_signals:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_now(service)))
        _logs.log.info("serving", extra={"event": "start", "revision": service.runtime.revision})
        refresher = asyncio.get_running_loop().create_task(_housekeeping(service))
        try:
            yield
        finally:
            refresher.cancel()
            service.draining = True
            _logs.log.info("stopped; closing the store", extra={"event": "stop"})
            service.metrics.refresh()  # the last samples, into the multiprocess files
            service.keys.close()
            service.holder.close()
            _logs.flush()

    table = routes(service) + extra
    app = ServiceApp(routes=table, lifespan=lifespan)
    app.state.service = service
    from ..console._mount import mount_console

    mount_console(app, service, config_path)  # the legal teams' console under /console (issue 18)
    app.add_middleware(_RequestIds, service=service)
    app.direct = {("POST", route.path): _direct(route.endpoint, service) for route in table
                  if isinstance(route, Route) and route.path in DIRECT_ROUTES and "POST" in (route.methods or ())}
    return app


async def _housekeeping(service: Service) -> None:
    """Write out the batched log lines (every ``_logs.FLUSH_SECONDS``) and hand the metrics over (every second)."""
    every = max(1, round(1.0 / _logs.FLUSH_SECONDS))
    for tick in itertools.count(1):
        await asyncio.sleep(_logs.FLUSH_SECONDS)
        try:
            _logs.flush()
            if tick % every == 0:
                service.metrics.refresh()
        except Exception as exc:  # noqa: BLE001 - a failed round must not end the timer (the next may succeed)
            _logs.log.error("housekeeping failed: %s", exc, extra={"event": "housekeeping_error"})


async def reload_now(service: Service) -> tuple[bool, str]:
    ok, message = await run_in_threadpool(service.holder.reload)
    service.metrics.reloads.labels("ok" if ok else "refused").inc()
    (_logs.log.info if ok else _logs.log.error)(message, extra={"event": "reload", "revision": service.runtime.revision})
    return ok, message
