"""Operating the service: hot reload keeping the last good pack, SIGTERM drain losing no record,
worker processes, TLS and mutual TLS, JSON-lines logs."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from fg_service import Server, counter_request, make_key, running, write_config

from facegate.store import AuditReceipt, SQLiteStore
from fg_paths import EXAMPLE


def _wait_for(predicate, what: str, tries: int = 600):
    for _ in range(tries):  # polling for an asynchronous effect (a signal), not timing it
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def example_request(**over):
    req = {"operation": "verify", "purpose": "payment", "subject": {"age": 30},
           "consent": {"type": "separate", "given_by": "subject", "purposes": ["payment"]}}
    req.update(over)
    return req


@pytest.mark.parametrize("workers", [1, 2])  # 2: the supervisor forwards SIGHUP to balanced workers
def test_sighup_and_admin_reload_keep_the_last_good_pack(tmp_path, workers):
    pack = tmp_path / "pack"
    shutil.copytree(EXAMPLE, pack)
    config = write_config(tmp_path / "svc", policy=pack, consent="request-only", log_json=True)
    key = make_key(config, "decide", "admin")
    rules = pack / "rules" / "rules.yaml"
    good = rules.read_text(encoding="utf-8")
    with running(config, workers=workers) as server, httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        def revision() -> str:
            return client.get("/v1/packs").json()["packs"][0]["revision"]

        first = revision()
        d = client.post("/v1/decide", json=example_request()).json()["decision"]
        assert d["decision"] == "permit" and d["policy"]["revision"] == first
        rules.write_text(good.replace("verification with consent", "verification with consent (amended)"), encoding="utf-8")
        server.signal(signal.SIGHUP)
        second = _wait_for(lambda: (r := revision()) != first and r, "SIGHUP reload")
        assert client.post("/v1/decide", json=example_request()).json()["decision"]["policy"]["revision"] == second

        rules.write_text(good.replace("effect: permit", "effect: permitt", 1), encoding="utf-8")  # fails `facegate check`
        server.signal(signal.SIGHUP)
        _wait_for(lambda: "reload refused" in server.output(), "refused reload logged")
        assert revision() == second
        d = client.post("/v1/decide", json=example_request()).json()["decision"]
        assert d["decision"] == "permit" and d["policy"]["revision"] == second

        refused = client.post("/v1/admin/reload")
        assert refused.status_code == 409 and refused.json()["revision"] == second
        assert "permitt" in refused.json()["message"]
        rules.write_text(good, encoding="utf-8")
        ok = client.post("/v1/admin/reload")
        assert ok.status_code == 200 and ok.json()["reloaded"] is True and ok.json()["revision"] == first
    log_lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "reload" and line["level"] == "error" for line in log_lines)
    assert all("request_id" in line for line in log_lines)


def _load(url: str, key: str, stop: threading.Event, got: list, errors: list) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        n = 0
        while not stop.is_set() and n < 2000:  # bounded: stops by itself
            n += 1
            try:
                r = client.post("/v1/decide/batch", json={"requests": [counter_request()] * 5})
            except httpx.TransportError:
                return  # the server stopped accepting: expected during the drain
            if r.status_code == 200:
                got.extend(r.json()["decisions"])
            else:
                errors.append(r.status_code)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_drains_and_every_answered_decision_is_in_the_intact_chain(tmp_path, workers):
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide", "metrics")
    server = Server(config, workers=workers)
    try:
        server.wait_ready()
        stop, got, errors = threading.Event(), [], []
        threads = [threading.Thread(target=_load, args=(server.url, key, stop, got, errors)) for _ in range(6)]
        for t in threads:
            t.start()
        _wait_for(lambda: len(got) >= 100, "load under way")
        server.signal(signal.SIGTERM)
        assert server.proc.wait(120) == 0
    finally:
        stop.set()
        server.stop()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(got) >= 100
    with SQLiteStore(config.parent / "facegate.db") as store:
        report = store.audit.verify()
        assert report.ok, report.problems
        logged = {row["record"]["decision_id"]: (row["seq"], row["hash"]) for row in store.audit.query(kind="decision")}
        for d in got:  # every decision a client received has its record, at the receipt it was given
            assert logged[d["decision"]["decision_id"]] == (d["receipt"]["seq"], d["receipt"]["hash"])
            assert store.audit.verify(anchor=AuditReceipt(d["receipt"]["seq"], d["receipt"]["hash"])).ok
    if workers == 2:
        assert "with 2 workers" in server.output()


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=facegate test CA", cwd=d)
    for name, cn in (("server", "127.0.0.1"), ("client", "teller-7")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
        (d / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.pem",
                 "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", "/CN=rogue", cwd=d)
    return d


@pytest.mark.parametrize("workers", [1, 2])  # 2: balanced accepting, the handshake in the worker
def test_mutual_tls_admits_only_clients_with_a_certificate_from_the_ca(tmp_path, pki, workers):
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide")
    tls = ("--ssl-certfile", str(pki / "server.pem"), "--ssl-keyfile", str(pki / "server.key"),
           "--ssl-ca-certs", str(pki / "ca.pem"), "--require-client-cert")
    server = Server(config, workers=workers, extra=tls)

    def context(cert: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        if cert:
            ctx.load_cert_chain(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key"))
        return ctx

    https = server.url.replace("http://", "https://")
    try:
        server.wait_ready(scheme_url=https, verify=context("client"))
        with httpx.Client(base_url=https, verify=context("client"), headers={"Authorization": f"Bearer {key}"}) as client:
            assert client.post("/v1/decide", json=counter_request()).json()["decision"]["decision"] == "permit"
        for cert in (None, "rogue"):
            with pytest.raises(httpx.TransportError), httpx.Client(base_url=https, verify=context(cert)) as client:
                client.get("/healthz")
        with pytest.raises(httpx.TransportError):
            httpx.get(server.url + "/healthz")  # plain HTTP on the TLS port
    finally:
        server.stop()


def test_a_dead_worker_is_restarted_and_counted(tmp_path):
    import os
    import re

    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide", "metrics")
    with running(config, workers=2) as server, httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        children = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True, check=False).stdout.split()
        workers = [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # not the resource tracker
        assert len(workers) >= 2
        os.kill(workers[0], signal.SIGKILL)
        _wait_for(lambda: "restarting (1 so far)" in server.output(), "the supervisor restarts the worker")

        def restarted_worker_answers() -> bool:
            text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text  # a new connection each time
            return bool(re.search(r"^facegate_worker_restarts 1\.0$", text, re.M))

        _wait_for(restarted_worker_answers, "a scrape reaches the restarted worker")
        assert client.post("/v1/decide", json=counter_request()).json()["decision"]["decision"] == "permit"
