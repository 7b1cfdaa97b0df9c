"""``facegate users add|list|disable`` and ``facegate console`` (the console on its own).

``facegate serve`` mounts the console under ``/console`` next to the API; ``facegate console``
runs only the console (for a legal team's laptop, or before the service is set up).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._roles import ROLES

EXIT_OK, EXIT_USAGE = 0, 2


def register(subparsers: Any) -> None:
    users = subparsers.add_parser("users", help="manage the console's users (roles: " + ", ".join(ROLES) + ")")
    cmds = users.add_subparsers(dest="users_command", metavar="{add,list,disable}")
    cmds.required = True
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", required=True, metavar="PATH", help="the console's users file (SQLite)")
    p = cmds.add_parser("add", parents=[db], help="add a user (the password is read from the terminal or --password-stdin)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of standard input")
    p.set_defaults(func=_add)
    p = cmds.add_parser("list", parents=[db], help="list users, roles and whether they are disabled")
    p.set_defaults(func=_list)
    p = cmds.add_parser("disable", parents=[db], help="disable a user (their sessions end at their next request)")
    p.add_argument("name")
    p.set_defaults(func=_disable)

    c = subparsers.add_parser("console", help="serve only the legal teams' console (facegate serve also mounts it under /console)")
    c.add_argument("packs", nargs="+", help="pack folders to serve")
    c.add_argument("--users", required=True, metavar="PATH", help="users file (facegate users add --db PATH)")
    c.add_argument("--store", required=True, metavar="PATH", help="evidence store (SQLite): approvals and changes are recorded in its audit chain")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8700)
    c.add_argument("--insecure-cookies", action="store_true",
                   help="drop the Secure flag (only for plain HTTP to a host name that is not localhost; never in production)")
    c.set_defaults(func=_console)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ConfigError("the two passwords differ")
    return first


def _add(args: argparse.Namespace) -> int:
    from ._accounts import Accounts

    user = Accounts(args.db).add(args.name, args.role, _password(args))
    print(f"added {user.name} ({user.role})")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from ._accounts import Accounts

    for u in Accounts(args.db).list():
        print(f"{u.name:<24} {u.role:<9} {'disabled' if u.disabled else 'active':<9} created {u.created}")
    return EXIT_OK


def _disable(args: argparse.Namespace) -> int:
    from ._accounts import Accounts

    Accounts(args.db).disable(args.name)
    print(f"disabled {args.name}")
    return EXIT_OK


def _console(args: argparse.Namespace) -> int:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    from . import Settings, create_console, redirect_to_console

    console = create_console(Settings(packs=[Path(p) for p in args.packs], users=Path(args.users), store=Path(args.store),
                                      secure_cookies=not args.insecure_cookies))
    app = Starlette(routes=[Route("/", redirect_to_console()), Mount("/console", app=console)])
    print(f"facegate console on http://{args.host}:{args.port}/console/", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        console.state.console.close()
    return EXIT_OK
