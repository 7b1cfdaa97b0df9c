"""Balanced accepting (``service/_balance``): two workers hold even shares of long-lived connections.

The shares are measured by the server (each worker's ``facegate_http_connections_open`` in
/metrics, one series per pid), not assumed from the client side.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import sys
import time

import pytest
import uvicorn
from fg_service import Server, counter_request, make_key, write_config

from facegate.service._balance import STALE_SECONDS, Shares, uvicorn_protocol_factory

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="balanced accepting needs the event loop's add_reader")


def test_a_worker_compares_itself_with_its_live_peers_only():
    shares = Shares(3)
    now = 1000.0
    assert shares.least_peer(0, now) is None  # nobody else serves yet: accept
    shares.publish(1, 7, now)
    shares.publish(2, 3, now - STALE_SECONDS - 0.1)  # stale: killed, hung or still starting
    assert shares.least_peer(0, now) == 7
    shares.publish(2, 3, now)
    assert shares.least_peer(0, now) == 3
    assert shares.least_peer(2, now) == 7  # slot 0 never published: not a live peer
    shares.clear(1)  # the supervisor restarts slot 1's worker
    assert shares.least_peer(0, now) == 3


def test_the_protocol_factory_is_still_the_one_uvicorn_builds():
    """The one piece of uvicorn repeated in ``_balance``: if an upgrade changes how uvicorn builds a
    connection's protocol or closes its servers, this fails and ``_balance`` must follow."""
    startup = inspect.getsource(uvicorn.Server.startup)
    call = re.search(r"config\.http_protocol_class\((.*?)\)", startup, re.S)
    assert call is not None, "uvicorn.Server.startup no longer builds config.http_protocol_class"
    arguments = {a.strip() for a in re.sub(r"#[^\n]*", "", call.group(1)).split(",") if a.strip()}
    assert arguments == {"config=config", "server_state=self.server_state", "app_state=self.lifespan.state", "_loop=_loop"}
    shutdown = inspect.getsource(uvicorn.Server.shutdown) + inspect.getsource(uvicorn.Server._wait_tasks_to_complete)
    assert "server.close()" in shutdown and "await server.wait_closed()" in shutdown
    assert "while self.server_state.connections" in shutdown  # the drain waits on the connections the acceptor counts

    async def build() -> None:
        config = uvicorn.Config(lambda scope, receive, send: None, lifespan="off", http="h11")
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        protocol = uvicorn_protocol_factory(server)()
        assert isinstance(protocol, config.http_protocol_class)

    asyncio.run(build())


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _call(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes) -> tuple[int, bytes]:
    reader, writer = conn
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    return int(head[9:12]), await reader.readexactly(length)


def _request(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _shares(conn, key: str, *, total: int, tries: int = 300) -> dict[str, int]:
    """Each worker's open connections, by pid, from /metrics asked over ``conn`` (no extra connection), once
    they add up to ``total``: the worker not answering hands its gauge over once a second."""
    for _ in range(tries):  # polling for the workers' periodic hand-over, not timing anything
        status, body = await _call(conn, _request("GET", "/metrics", key))
        assert status == 200
        shares = {m.group(1): int(float(m.group(2)))
                  for m in re.finditer(r'^facegate_http_connections_open\{pid="(\d+)"\} (\S+)$', body.decode(), re.M)}
        if sum(shares.values()) == total:
            return shares
        await asyncio.sleep(0.1)
    raise AssertionError(f"the workers' connections never added up to {total}: {shares}")


def _two_workers(tmp_path) -> tuple[Server, str]:
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide", "metrics")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    server = Server(config, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)})
    server.wait_ready()
    return server, key


async def _all_serving(port: int, key: str, workers: int, tries: int = 600) -> set[str]:
    """The pids of the workers serving, once there are ``workers`` of them (each reports its gauge once a second)."""
    for _ in range(tries):  # polling for start-up
        conn = await _open(port)
        status, body = await _call(conn, _request("GET", "/metrics", key))
        conn[1].close()
        pids = set(re.findall(r'^facegate_http_connections_open\{pid="(\d+)"\}', body.decode(), re.M))
        if status == 200 and len(pids) == workers:
            return pids
        await asyncio.sleep(0.1)
    raise AssertionError("the workers never all served")


def test_64_keep_alive_connections_opened_at_once_split_32_32_and_a_killed_workers_share_is_taken_over(tmp_path):
    server, key = _two_workers(tmp_path)
    decide = _request("POST", "/v1/decide", key, json.dumps(counter_request()).encode())

    async def scenario() -> None:
        first = await _all_serving(server.port, key, 2)
        conns = await asyncio.gather(*(_open(server.port) for _ in range(64)))  # all at once
        answers = await asyncio.gather(*(_call(c, decide) for c in conns))  # each connection opened at the protocol level
        assert all(status == 200 and b'"decision":"permit"' in body for status, body in answers)
        shares = await _shares(conns[0], key, total=64)
        assert set(shares) == first
        assert all(31 <= n <= 33 for n in shares.values()), shares

        victim = min(first)  # SIGKILL one worker: its connections die, the supervisor starts a replacement
        os.kill(int(victim), signal.SIGKILL)
        deadline = time.monotonic() + 120
        while "restarting (1 so far)" not in server.output():  # polling for the supervisor, not timing it
            assert time.monotonic() < deadline, server.output()
            await asyncio.sleep(0.05)
        survivors = await _still_open(conns, decide)
        assert len(survivors) == 64 - shares[victim]
        pids = await _all_serving(server.port, key, 2)
        assert victim not in pids and len(pids - first) == 1
        replacement = (pids - first).pop()
        again = await asyncio.gather(*(_open(server.port) for _ in range(64 - len(survivors))))  # the clients reconnect
        answers = await asyncio.gather(*(_call(c, decide) for c in again))
        assert all(status == 200 for status, _ in answers)
        now = await _shares(survivors[0], key, total=64)
        assert set(now) == pids
        assert all(31 <= n <= 33 for n in now.values()), now  # the replacement took the dead worker's share
        assert now[replacement] >= 31
        for _, writer in [*survivors, *again]:
            writer.close()

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0


async def _still_open(conns, raw: bytes) -> list:
    """The connections that still answer (a killed worker's were closed by the kernel when it died)."""
    out = []
    for conn in conns:
        try:
            status, _ = await _call(conn, raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            conn[1].close()
            continue
        assert status == 200
        out.append(conn)
    return out


def test_port_0_short_connections_and_closed_ones_leave_the_shares(tmp_path):
    """``--port 0``: the workers share the port the supervisor drew.  Connections opened and closed one
    after another (both workers woken for each; one accepts) are all answered, and once closed no
    worker counts them any more."""
    config = write_config(tmp_path / "svc")
    key = make_key(config, "decide", "metrics")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    server = Server(config, workers=2, extra=("--port", "0"), env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)})
    decide = _request("POST", "/v1/decide", key, json.dumps(counter_request()).encode())

    async def scenario(port: int) -> None:
        await _all_serving(port, key, 2)
        for _ in range(60):
            conn = await _open(port)
            status, body = await _call(conn, decide)
            assert status == 200 and b'"decision":"permit"' in body
            conn[1].close()
            await conn[1].wait_closed()
        held = [await _open(port) for _ in range(10)]
        for conn in held:
            assert (await _call(conn, decide))[0] == 200
        shares = await _shares(held[0], key, total=10)  # the 60 closed ones are gone from both counts
        assert sorted(shares.values()) == [5, 5], shares
        for _, writer in held:
            writer.close()

    try:
        deadline = time.monotonic() + 120
        while not (found := re.search(r"serving on 127\.0\.0\.1:(\d+) with 2 workers, balanced accepting", server.output())):
            assert time.monotonic() < deadline and server.proc.poll() is None, server.output()
            time.sleep(0.05)  # polling for start-up
        port = int(found.group(1))
        assert port != 0
        asyncio.run(scenario(port))
    finally:
        assert server.stop() == 0


def test_a_hung_worker_does_not_hold_its_peer_back(tmp_path):
    """A stopped worker (SIGSTOP: alive to the supervisor, silent to its peers) with fewer connections
    than its peer: once its heartbeat is stale the peer accepts every new connection."""
    server, key = _two_workers(tmp_path)
    decide = _request("POST", "/v1/decide", key, json.dumps(counter_request()).encode())

    async def scenario() -> None:
        pids = await _all_serving(server.port, key, 2)
        hung, peer = sorted(pids)
        os.kill(int(hung), signal.SIGSTOP)
        try:
            conns = await asyncio.gather(*(_open(server.port) for _ in range(10)))
            answers = await asyncio.wait_for(asyncio.gather(*(_call(c, decide) for c in conns)), 60)
            assert all(status == 200 for status, _ in answers)
            status, body = await _call(conns[0], _request("GET", "/metrics", key))
            held = re.search(rf'^facegate_http_connections_open\{{pid="{peer}"\}} (\S+)$', body.decode(), re.M)
            assert held is not None and float(held.group(1)) == 10  # the answering worker's own count, at the scrape
        finally:
            os.kill(int(hung), signal.SIGCONT)
        for _, writer in conns:
            writer.close()

    try:
        asyncio.run(scenario())
    finally:
        assert server.stop() == 0
