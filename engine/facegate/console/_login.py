"""Logging in and out."""

from __future__ import annotations

from starlette.responses import Response

from ._sessions import COOKIE, LOGIN_COOKIE, new_token, same_token
from ._web import HEADERS, Ctx


def _safe_next(value: str | None) -> str:
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _cookie_path(ctx: Ctx) -> str:
    return ctx.base or "/"


def login_form(ctx: Ctx, message: str = "", status: int = 200) -> Response:
    if ctx.user is not None and not message:
        return ctx.redirect(_safe_next(ctx.request.query_params.get("next")))
    token = new_token()
    next_path = _safe_next(ctx.request.query_params.get("next") or (ctx.form.get("next") if ctx.form else None))
    response = ctx.page("login.html", status=status, login_token=token, next=next_path, message=message)
    response.set_cookie(LOGIN_COOKIE, token, max_age=600, path=_cookie_path(ctx), secure=ctx.state.settings.secure_cookies,
                        httponly=True, samesite="strict")
    return response


def login(ctx: Ctx) -> Response:
    form = ctx.form
    name = str(form.get("username") or "").strip()
    password = str(form.get("password") or "")
    client = ctx.request.client.host if ctx.request.client else "?"
    if not same_token(ctx.request.cookies.get(LOGIN_COOKIE), form.get("login_token")):
        ctx.state.record("login_refused_csrf", name or None, client=client)
        return login_form(ctx, "The login form expired or was not sent from this page. Try again.", 403)
    throttle, by_client = ctx.state.throttle, ctx.state.client_throttle
    user_key, client_key = f"user:{name.lower()}", f"client:{client}"
    wait = max(throttle.blocked(user_key), by_client.blocked(client_key))
    if wait > 0:
        ctx.state.record("login_throttled", name or None, client=client)
        return login_form(ctx, f"Too many failed logins. Try again in {int(wait) + 1} seconds.", 429)
    user = ctx.state.accounts.authenticate(name, password)
    if user is None:
        throttle.failed(user_key)
        by_client.failed(client_key)
        ctx.state.record("login_failed", name or None, client=client)
        return login_form(ctx, "Wrong user name or password, or the account is disabled.", 401)
    throttle.succeeded(user_key)
    session = ctx.state.sessions.create(user.name)
    ctx.state.record("login", user.name, client=client, role=user.role)
    response = ctx.redirect(_safe_next(form.get("next")))
    response.set_cookie(COOKIE, session.token, path=_cookie_path(ctx), secure=ctx.state.settings.secure_cookies,
                        httponly=True, samesite="strict")
    response.delete_cookie(LOGIN_COOKIE, path=_cookie_path(ctx))
    return response


def logout(ctx: Ctx) -> Response:
    if ctx.session is not None:
        ctx.state.sessions.end(ctx.session.token)
        ctx.state.record("logout", ctx.user.name if ctx.user else None)
    response = ctx.redirect("/login")
    response.delete_cookie(COOKIE, path=_cookie_path(ctx), secure=ctx.state.settings.secure_cookies, httponly=True, samesite="strict")
    for k, v in HEADERS.items():
        response.headers.setdefault(k, v)
    return response
