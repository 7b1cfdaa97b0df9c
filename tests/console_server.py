"""A real console server on a free loopback port, for the console's HTTP and browser tests."""

from __future__ import annotations

import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

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
