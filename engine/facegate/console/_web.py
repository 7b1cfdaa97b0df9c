"""The console's HTTP plumbing: who is asking, may they, is the form theirs, and the page.

Every route is a plain function of a :class:`Ctx` wrapped by :func:`endpoint`, which

1. finds the session (cookie) and the user behind it -- no session: the login page (GET) or 401;
2. checks the role the route needs -- too low: 403, recorded in the audit chain;
3. for a POST, checks the CSRF token -- missing or wrong: 403, recorded;
4. runs the function in a worker thread (pack loading, argon2 and case runs block) and renders.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import FacegateError, StoreError
from ._accounts import User
from ._roles import ROLES
from ._sessions import COOKIE, Session, same_token
from ._state import ConsoleState

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=jinja2.select_autoescape(["html"], default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_BODY = 2 * 1024 * 1024  # a rule's YAML or a playground request is a few kilobytes
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


@dataclass
class Ctx:
    request: Request
    state: ConsoleState
    form: Any
    user: User | None
    session: Session | None
    base: str

    def url(self, path: str) -> str:
        return self.base + path

    def page(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = TEMPLATES.get_template(template).render(
            base=self.base, user=self.user, csrf=self.session.csrf if self.session else "", roles=ROLES,
            can=lambda role: bool(self.user and self.user.can(role)), q=quote,
            query=self.request.query_params, **values)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def redirect(self, path: str) -> RedirectResponse:
        return RedirectResponse(self.url(path), status_code=303, headers=HEADERS)

    def refuse(self, status: int, title: str, detail: str, event: str | None = None) -> HTMLResponse:
        if event is not None:
            try:
                self.state.record(event, self.user.name if self.user else None, path=self.request.url.path,
                                  method=self.request.method, client=_client(self.request), detail=detail)
            except StoreError as exc:  # the refusal stands; say that it went unrecorded
                detail += f" (and it could not be recorded: {exc})"
        return self.page("error.html", status=status, title=title, detail=detail)


def base_of(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def endpoint(state: ConsoleState, view: Callable[[Ctx], Response], role: str | None = "viewer") -> Callable[[Request], Any]:
    """Wrap ``view``: session, role, CSRF (POST), a worker thread; ``role=None`` for public pages."""

    async def handle(request: Request) -> Response:
        if request.method == "POST":
            too_large = HTMLResponse(f"the form is larger than {MAX_BODY} bytes", status_code=413, headers=HEADERS)
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
                return too_large
            size, chunks = 0, []
            async for chunk in request.stream():  # a chunked body is counted as it comes
                size += len(chunk)
                if size > MAX_BODY:
                    return too_large
                chunks.append(chunk)
            request._body = b"".join(chunks)  # what request.form() parses next
        form = await request.form(max_files=0, max_fields=2000) if request.method == "POST" else None
        try:
            return await run_in_threadpool(_run, state, view, role, request, form)
        finally:
            if form is not None:
                await form.close()

    return handle


def _run(state: ConsoleState, view: Callable[[Ctx], Response], role: str | None, request: Request, form: Any) -> Response:
    session = state.sessions.get(request.cookies.get(COOKIE))
    user = state.accounts.get(session.user) if session else None
    if session is not None and (user is None or user.disabled):
        state.sessions.end(session.token)
        session, user = None, None
    ctx = Ctx(request, state, form, user, session, base_of(request))
    try:
        if role is not None:
            if user is None or session is None:
                if request.method == "GET":
                    return ctx.redirect("/login?next=" + quote(request.url.path[len(ctx.base):] or "/"))
                return ctx.refuse(401, "Not logged in", "log in first", event="refused_no_session")
            if not user.can(role):
                return ctx.refuse(403, "Not allowed", f"this needs the `{role}` role; you are `{user.role}`", event="refused_role")
            if request.method == "POST":
                given = form.get("csrf") if form is not None else None
                given = given or request.headers.get("x-csrf-token")
                if not same_token(session.csrf, given if isinstance(given, str) else None):
                    return ctx.refuse(403, "Form refused", "the form's CSRF token is missing or wrong; reload the page and try again",
                                      event="refused_csrf")
        return view(ctx)
    except FacegateError as exc:
        return ctx.refuse(400, "Could not do that", str(exc))
    except Exception as exc:  # noqa: BLE001 -- a bug of ours: a plain page, the details in the log
        traceback.print_exc()
        return ctx.refuse(500, "Internal error", f"{type(exc).__name__}: {exc}")
