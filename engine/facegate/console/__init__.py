"""The console: where a legal team reads, tries, changes and signs off a pack's rules.

An ASGI application (Starlette) of server-rendered pages with a little progressive JavaScript;
``facegate serve`` mounts it under ``/console``, and it runs on its own too::

    app = create_console(Settings(packs=[Path("policies/cn-cac-2023-draft")],
                                  users=Path("console-users.db"), store=Path("facegate.db")))

Threat model (what it defends, what it does not):

- *Anonymous network users*: nothing but the login page and the stylesheet/script without a
  session.  Passwords are argon2id hashes; logins are throttled per user name and per client
  address; a failed, throttled or refused login is recorded in the audit chain.
- *Cross-site requests* from a page the user has open elsewhere: session cookies are
  ``SameSite=Strict``, every POST carries a per-session CSRF token (the login form a
  double-submit one), pages forbid framing (``frame-ancestors 'none'``) and run no inline script.
- *A logged-in user beyond their role*: each route names the least role it needs (viewer <
  editor < reviewer < admin), checked on every request against the user's row, so disabling a
  user ends their access at once.  Every refusal is recorded.
- *Lost or silent changes*: a save is refused when the pack's files changed since the editor
  was opened; every save and approval is an audit-chain record (who, when, revisions, diff).
- Not defended: a user who can write the pack folder or the store directly (approvals in the
  chain are then still tamper-evident, see ``facegate audit verify``); TLS itself (run the
  console behind ``facegate serve``'s TLS or a reverse proxy: cookies are ``Secure``, so a
  browser sends them only over HTTPS or to ``localhost``/``127.0.0.1``).  Sessions and
  failed-login counts live in the users file (sessions under the SHA-256 of their token), so all
  worker processes share them and a restart logs nobody out; whoever can read that file can
  read user names and hashes, never a usable session token.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._roles import ROLES

if TYPE_CHECKING:  # the web stack is an extra (`facegate[console]`): imported when used
    from starlette.applications import Starlette

    from ._state import Settings

__all__ = ["ROLES", "Settings", "create_console"]


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from ._state import Settings

        return Settings
    raise AttributeError(name)


def create_console(settings: Settings, *, store: Any | None = None) -> Starlette:
    """The console as an ASGI app; mount it anywhere (``Mount("/console", app=...)``).

    ``store``: an open evidence store to share (the service's); by default the console opens
    ``settings.store`` itself.  ``app.state.console.close()`` closes it (the app's own lifespan
    does so when it runs alone; mounted in another app, the host calls it).
    """
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from . import _change, _evidence, _login, _read, _try
    from ._state import ConsoleState
    from ._web import endpoint

    state = ConsoleState(settings, store)

    def e(view: Any, role: str | None = "viewer") -> Any:
        return endpoint(state, view, role)

    routes = [
        Route("/login", e(_login.login_form, None), methods=["GET"]),
        Route("/login", e(_login.login, None), methods=["POST"]),
        Route("/logout", e(_login.logout), methods=["POST"]),
        Route("/", e(_read.home), methods=["GET"]),
        Route("/packs/{pack}", e(_read.pack_page), methods=["GET"]),
        Route("/packs/{pack}/review", e(_read.review_page), methods=["GET"]),
        Route("/packs/{pack}/provisions/{provision}", e(_read.provision_page), methods=["GET"]),
        Route("/packs/{pack}/try", e(_try.playground), methods=["GET", "POST"]),
        Route("/packs/{pack}/cases", e(_try.save_case, "editor"), methods=["POST"]),
        Route("/packs/{pack}/rules/{rule}/edit", e(_change.edit_page, "editor"), methods=["GET"]),
        Route("/packs/{pack}/rules/{rule}/check", e(_change.check_fragment, "editor"), methods=["POST"]),
        Route("/packs/{pack}/rules/{rule}/edit", e(_change.save_rule, "editor"), methods=["POST"]),
        Route("/packs/{pack}/approve", e(_change.approve, "reviewer"), methods=["POST"]),
        Route("/audit", e(_evidence.browser), methods=["GET"]),
        Route("/audit/export", e(_evidence.export), methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    # Mounted inside another app, this lifespan does not run: the host closes ``app.state.console``.
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = state
    return app


def redirect_to_console(prefix: str = "/console") -> Any:
    """A tiny route target sending ``/`` to the console (for a server hosting only the console)."""

    from starlette.responses import RedirectResponse

    async def go(request: Any) -> RedirectResponse:
        return RedirectResponse(prefix + "/", status_code=307)

    return go
