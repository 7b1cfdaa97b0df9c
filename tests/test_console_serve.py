"""`facegate serve` hosts the console under /console, sharing its store (one audit chain)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys

import httpx
import pytest

pytest.importorskip("argon2")

from console_server import PASSWORD, Client
from fg_service import CAC, running, write_config


def test_serve_mounts_the_console_and_approvals_share_the_decision_chain(tmp_path, monkeypatch):
    from facegate.cli import main

    pack = tmp_path / "pack" / CAC.name
    shutil.copytree(CAC, pack, ignore=shutil.ignore_patterns("REVIEW.*"))
    config = write_config(tmp_path / "svc", policy=pack)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "rita", "--role", "reviewer", "--db", str(config.parent / "facegate-users.db"), "--password-stdin"]) == 0
    with running(config) as server:
        c = Client(server.url + "/console")
        try:
            assert c.get("/").status_code == 303  # nothing but the login page without a session
            assert c.login("rita").status_code == 303
            page = c.get(f"/packs/{CAC.name}/provisions/CN23-14").text
            token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
            revision = re.search(r'name="revision" value="([^"]+)"', page).group(1)
            r = c.post(f"/packs/{CAC.name}/approve", {"csrf": token, "revision": revision, "rule": "cn23-14-sensitive-attributes"})
            assert r.status_code == 303
        finally:
            c.http.close()
    run = subprocess.run([sys.executable, "-m", "facegate.cli", "audit", "show", "--db", str(config.parent / "facegate.db"),
                          "--kind", "approval", "--json"], capture_output=True, text=True, check=False)
    assert '"by": "rita"' in run.stdout
    run = subprocess.run([sys.executable, "-m", "facegate.cli", "audit", "verify", "--db", str(config.parent / "facegate.db")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout


def test_a_console_session_holds_on_every_worker_and_across_a_restart(tmp_path, monkeypatch):
    """Sessions live in the users file: with two worker processes every request of a logged-in
    user is served as that user, whichever worker takes it (each on a new connection), and the
    session outlives a restart of the service; a logout on one worker ends it on all."""
    from facegate.cli import main

    config = write_config(tmp_path / "svc")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "lin", "--role", "viewer", "--db", str(config.parent / "facegate-users.db"), "--password-stdin"]) == 0
    with running(config, workers=2) as server:
        c = Client(server.url + "/console")
        try:
            assert c.login("lin").status_code == 303
            cookies = dict(c.cookies)
            for _ in range(12):
                with httpx.Client(timeout=60) as fresh:  # a new connection: either worker may take it
                    r = fresh.get(server.url + "/console/", headers=c._headers())
                assert r.status_code == 200 and "lin" in r.text, r.status_code
        finally:
            c.http.close()
    with running(config) as server:
        c = Client(server.url + "/console")
        c.cookies.update(cookies)
        try:
            assert c.get("/").status_code == 200  # still logged in after the restart
            assert c.post("/logout", {"csrf": c.csrf()}).status_code == 303
            c.cookies.update(cookies)  # the old cookie, replayed
            assert c.get("/").status_code == 303
        finally:
            c.http.close()
