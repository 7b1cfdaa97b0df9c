"""A throw-away PostgreSQL server for tests and benchmarks: initdb in a temporary folder, loopback only.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user (through
``runuser``) in a temporary data folder it owns; otherwise as the current user.  Password
authentication (scram) on 127.0.0.1, so wrong credentials really are refused.  ``stop()`` and
``start()`` keep the data folder and port (the fault tests stop the server under load);
``destroy()`` removes everything.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _bindir() -> Path:
    """$FACEGATE_PG_BINDIR, else PostgreSQL 15's Debian folder, else the newest installed version's."""
    if os.environ.get("FACEGATE_PG_BINDIR"):
        return Path(os.environ["FACEGATE_PG_BINDIR"])
    preferred = Path("/usr/lib/postgresql/15/bin")
    if preferred.exists():
        return preferred
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return found[-1].parent if found else preferred


BINDIR = _bindir()
PASSWORD = "facegate-test-secret"


class ServerUnavailable(RuntimeError):
    """The PostgreSQL binaries are missing or the server would not start (with the reason)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, bindir: Path = BINDIR) -> None:
        if not (bindir / "initdb").exists():
            raise ServerUnavailable(f"no PostgreSQL server binaries in `{bindir}` (install the `postgresql` package)")
        self.bindir = bindir
        self.as_postgres = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="facegate-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        if self.as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_postgres:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions")
        pwfile.unlink()
        self.start()

    def _run(self, tool: str, *args: str) -> str:
        command = [str(self.bindir / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ServerUnavailable(f"`{tool}` failed ({done.returncode}): {done.stderr.strip()} {tail}")
        return done.stdout

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres", *, password: str = PASSWORD, user: str = "postgres") -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except ServerUnavailable:
            pass
        shutil.rmtree(self.root, ignore_errors=True)
