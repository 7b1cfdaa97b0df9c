"""docs/service.md stays true: its curl + jq client runs against a live server; its endpoint table is complete."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from fg_service import FACES, counter_request, make_key, running, write_config

from facegate.service._openapi import build
from fg_paths import ROOT

DOC = ROOT / "docs" / "service.md"


def _client_script() -> str:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- client:begin -->", 1)[1].split("<!-- client:end -->", 1)[0]
    return block.split("```bash\n", 1)[1].rsplit("```", 1)[0]


def test_every_documented_route_is_in_the_endpoint_table():
    text = DOC.read_text(encoding="utf-8")
    for path, item in build()["paths"].items():
        for method in item:
            assert re.search(rf"`{method.upper()} {re.escape(path)}`", text), f"{method.upper()} {path} missing from docs/service.md"


def test_the_curl_and_jq_client_in_the_docs_works(tmp_path):
    for tool in ("curl", "jq", "bash"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            pytest.fail(f"`{tool}` is needed (.ci/run installs curl and jq)")
    client = tmp_path / "facegate-client"
    client.write_text(_client_script(), encoding="utf-8")
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide", "process", "audit:read")
    permit, deny = tmp_path / "permit.json", tmp_path / "deny.json"
    permit.write_text(json.dumps(counter_request()), encoding="utf-8")
    deny.write_text(json.dumps(counter_request(capture={"mode": "remote"})), encoding="utf-8")
    with running(config) as server:
        env = {**os.environ, "FACEGATE_URL": server.url, "FACEGATE_KEY": key}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", str(client), *args], capture_output=True, text=True, env=env, timeout=120)

        ok = run("decide", str(permit))
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith("PERMIT permitted [CN23-") and "seq=" in ok.stdout
        no = run("decide", str(deny))
        assert no.returncode == 3 and no.stdout.startswith("DENY ")
        same = run("process", str(permit), str(FACES / "obama.jpg"), str(FACES / "obama2.jpg"))
        assert same.returncode == 0, same.stderr
        assert '"same_person":true' in same.stdout
        log = run("verify-log")
        assert log.returncode == 0 and log.stdout.startswith("chain intact:")
        env["FACEGATE_KEY"] = "fgk_000000000000_" + "A" * 43
        refused = run("decide", str(permit))
        assert refused.returncode == 4 and "401 Unauthorized" in refused.stderr
