"""A real ``facegate serve`` on a free loopback port, for the service tests (plainly named, no conftest)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from fg_paths import ROOT

CAC = ROOT / "policies" / "cn-cac-2023-draft"
FACES = ROOT.parent / "shared" / "data" / "faces"
ALL_SCOPES = ("decide", "process", "audit:read", "consent:read", "consent:write", "metrics", "admin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, *, policy: Path = CAC, limits: dict[str, Any] | None = None, log_json: bool = False,
                 consent: str = "registry-overrides") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    service: dict[str, Any] = {"keys": "keys.db", "log": {"json": log_json}}
    if limits:
        service["limits"] = limits
    config = {"policy": str(policy), "plugins": {"allow": ["onnx"]}, "recognizer": {"id": "onnx", "timeout_seconds": 60},
              "store": {"path": "facegate.db"}, "consent": {"mode": consent}, "service": service}
    path = folder / "facegate.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def make_key(config: Path, *scopes: str) -> str:
    from facegate.service import KeyStore

    store = KeyStore(config.parent / "keys.db")
    try:
        return store.create("test", scopes)[1]
    finally:
        store.close()


class Server:
    """``facegate serve`` as a child process; ``url`` once /healthz answers."""

    def __init__(self, config: Path, *, workers: int = 1, extra: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = config.parent / f"serve-{self.port}.log"
        cmd = [sys.executable, "-c", "import sys; from facegate.cli import main; sys.exit(main())", "serve",
               "--config", str(config), "--port", str(self.port), "--workers", str(workers), *extra]
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                     start_new_session=True)

    def wait_ready(self, deadline_s: float = 120.0, *, scheme_url: str | None = None, **client: Any) -> None:
        url = scheme_url or self.url
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(url + "/healthz", timeout=2, **client).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling for start-up, not timing anything
        raise RuntimeError(f"server did not start:\n{self.output()}")

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_output(self, text: str, timeout: float = 30.0) -> str:
        """The log once it contains ``text``: the access line is written after the response is sent, so poll."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.output()
            if text in log or time.monotonic() > deadline:
                return log
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._out.close()
        return int(self.proc.returncode)


@contextlib.contextmanager
def running(config: Path, **kw: Any) -> Iterator[Server]:
    server = Server(config, **kw)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def face_bytes(name: str = "obama.jpg") -> bytes:
    return (FACES / name).read_bytes()


def counter_request(**over: Any) -> dict[str, Any]:
    """A bank-counter verification the CAC pack permits (cooperative, prompted, consented, filed)."""
    req: dict[str, Any] = {
        "operation": "verify", "purpose": "identity_verification", "jurisdiction": "CN",
        "actor": {"id": "bank-001", "role": "business_premises", "sector": "bank", "stored_persons": 5000, "filing": "filed",
                  "pia": {"completed": True, "covers_purpose": True}},
        "place": {"type": "business_premises", "signage": True},
        "capture": {"mode": "cooperative", "source": "camera", "realtime": True, "purpose_prompt_shown": True, "initiated_by": "subject"},
        "subject": {"id": "customer-eileen", "age": 42, "declined_face": False},
        "consent": {"type": "separate", "given_by": "subject", "purposes": ["identity_verification"], "withdrawn": False},
        "legal_basis": {"ground": "none"},
        "alternative": {"offered": True},
        "storage": {"raw_image": "discard", "location": "on_device", "transmit_over_internet": False, "retention_days": 365},
        "review": {"human_review": False},
    }
    req.update(over)
    return req
