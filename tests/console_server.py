"""A real console server on a free loopback port, for the console's HTTP and browser tests."""

from __future__ import annotations

import re
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx

from fg_paths import ROOT

PACK = ROOT / "policies" / "cn-cac-2023-draft"
PASSWORD = "correct horse battery"
USERS = {"vera": "viewer", "eddie": "editor", "rita": "reviewer", "ada": "admin"}


@dataclass
class Server:
    url: str  # the console's root, ending in /console
    pack: Path
    store: Path
    users: Path
    app: object
    thread: threading.Thread
    uvicorn: object

    def stop(self) -> None:
        self.uvicorn.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=30)
        self.app.state.console.close()  # type: ignore[attr-defined]


def start(tmp: Path, *, max_failures: int = 5) -> Server:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from facegate.console import Settings, create_console
    from facegate.console._accounts import Accounts

    pack = tmp / PACK.name
    shutil.copytree(PACK, pack, ignore=shutil.ignore_patterns("REVIEW.*"))
    accounts = Accounts(tmp / "users.db")
    for name, role in USERS.items():
        accounts.add(name, role, PASSWORD)
    console = create_console(Settings(packs=[pack], users=tmp / "users.db", store=tmp / "facegate.db", max_failures=max_failures))
    app = Starlette(routes=[Mount("/console", app=console)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(2000):  # wait for uvicorn to say it started (not a timing assertion)
        if server.started:
            started.set()
            break
        started.wait(0.01)
    assert server.started, "the console server did not start"
    return Server(f"http://127.0.0.1:{port}/console", pack, tmp / "facegate.db", tmp / "users.db", console, thread, server)


class Client:
    """An HTTP client that keeps the console's cookies by hand: they are ``Secure``, and Python's
    cookie jar will not send those over plain HTTP (a browser does, to 127.0.0.1)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.http = httpx.Client(follow_redirects=False, timeout=60)

    def _keep(self, r: httpx.Response) -> httpx.Response:
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in header.lower() or 'expires=thu, 01 jan 1970' in header.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def _headers(self) -> dict[str, str]:
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}

    def get(self, path: str) -> httpx.Response:
        return self._keep(self.http.get(self.base + path, headers=self._headers()))

    def post(self, path: str, data: dict) -> httpx.Response:
        return self._keep(self.http.post(self.base + path, data=data, headers=self._headers()))

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        page = self.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        return self.post("/login", {"username": name, "password": password, "login_token": token, "next": "/"})

    def csrf(self, path: str = "/") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.get(path).text).group(1)
