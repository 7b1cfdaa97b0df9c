"""Balanced accepting: worker processes share one listening socket and hold equal shares of its connections.

Why: a client such as a load balancer or a benchmark keeps a fixed set of keep-alive connections
and sends every request down one of them, so the worker that holds a connection serves all of its
requests.  An uneven split of connections is an uneven split of work: one core saturates and its
queue makes the latency's tail while the other core idles.  ``SO_REUSEPORT`` hashes each
connection to a worker (64 connections split 26/38 to 31/33 in our runs), and a plain shared socket
is worse: the worker that wakes first accepts a whole burst.

How (as Node's cluster module does with round-robin, but without routing every connection through
the supervisor): every worker watches the shared listening socket and accepts **one** connection
per wake-up, and only while it holds no more open connections than the least-loaded live peer.
A worker over its share stops watching the socket; a timer re-checks every ``TICK_SECONDS``.  So
at any moment the workers' counts differ by at most one (two workers admitted by the same peer
count at the same instant each take one connection, which keeps the difference).  The counts live
in a small shared-memory array (:class:`Shares`) of (open connections, heartbeat) per worker slot;
a slot whose heartbeat is older than ``STALE_SECONDS`` (a killed, hung, draining or starting
worker) is ignored, so a dead worker's count never blocks its peers, and the supervisor clears the
slot of a worker it restarts.  Long-lived connections are not moved: after a restart new
connections go to the replacement until the counts are even again.

A worker's count is its connections open at the protocol level (uvicorn's ``server_state``, which
its own graceful shutdown uses) plus those accepted whose protocol has not yet started (a TLS
handshake in progress, done in the worker as before).

The hook into uvicorn: :class:`BalancedServer` lets uvicorn's ``startup`` run with no socket (the
lifespan, the app state) and adds its own acceptor to ``servers`` (uvicorn closes and awaits each on
shutdown).  The connections are handed to asyncio's public ``loop.connect_accepted_socket`` with
the protocol uvicorn would build -- :func:`uvicorn_protocol_factory`, the one piece of uvicorn's
code repeated here (checked against uvicorn 0.55; a test compares it with uvicorn's source, so an
upgrade that changes it fails loudly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable
from typing import Any

import uvicorn

log = logging.getLogger("facegate.service")

#: How often a worker publishes its count and heartbeat, and (when over its share) re-checks.
TICK_SECONDS = 0.01
#: A slot whose heartbeat is older than this is not a live peer (its count is ignored).
STALE_SECONDS = 1.0


class Shares:
    """Per worker slot: open connections and the time of the last heartbeat (``time.monotonic``).

    A ``multiprocessing`` raw array of doubles in shared memory, created by the supervisor and
    handed to each spawned worker; no lock: each slot has one writer (its worker, or the
    supervisor while the slot's worker is not running) and readers tolerate a stale value.
    """

    def __init__(self, workers: int, *, array: Any = None) -> None:
        self.workers = workers
        self.array = array if array is not None else multiprocessing.get_context("spawn").RawArray("d", 2 * workers)

    def publish(self, slot: int, count: int, now: float) -> None:
        self.array[2 * slot] = count
        self.array[2 * slot + 1] = now

    def clear(self, slot: int) -> None:
        """The slot's worker is gone or not serving: peers ignore it."""
        self.array[2 * slot + 1] = 0.0
        self.array[2 * slot] = 0.0

    def least_peer(self, slot: int, now: float) -> float | None:
        """The smallest count among the live peers of ``slot``; None when it has none."""
        least = None
        for peer in range(self.workers):
            if peer != slot and now - self.array[2 * peer + 1] < STALE_SECONDS:
                count = self.array[2 * peer]
                least = count if least is None or count < least else least
        return least


def uvicorn_protocol_factory(server: uvicorn.Server) -> Callable[[], asyncio.Protocol]:
    """The HTTP protocol uvicorn's ``Server.startup`` builds for each connection (its ``create_protocol``)."""
    config = server.config

    def create_protocol() -> asyncio.Protocol:
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=server.server_state, app_state=server.lifespan.state)

    return create_protocol


class BalancedAcceptor:
    """Accepts from the shared listening socket while this worker's share allows (see the module doc).

    Looks like an ``asyncio.Server`` to uvicorn's shutdown: ``close`` stops accepting and leaves
    the peers this worker's share; ``wait_closed`` waits for the connections still being opened.
    """

    def __init__(self, sock: socket.socket, shares: Shares, slot: int, server: uvicorn.Server) -> None:
        self._sock = sock
        self._shares = shares
        self._slot = slot
        self._connections = server.server_state.connections
        self._protocol = uvicorn_protocol_factory(server)
        self._ssl = server.config.ssl
        self._loop = asyncio.get_running_loop()
        self._opening: dict[asyncio.Task[None], asyncio.Protocol | None] = {}
        self._watching = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self._tick()

    def open_connections(self) -> int:
        """Connections this worker holds: open at the protocol level, or accepted and still being opened."""
        opening = sum(1 for p in self._opening.values() if p is None or p not in self._connections)
        return len(self._connections) + opening

    def _may_accept(self) -> bool:
        now = time.monotonic()
        mine = self.open_connections()
        self._shares.publish(self._slot, mine, now)
        least = self._shares.least_peer(self._slot, now)
        return least is None or mine <= least

    def _watch(self, on: bool) -> None:
        if on and not self._watching:
            self._loop.add_reader(self._sock.fileno(), self._on_readable)
        elif not on and self._watching:
            self._loop.remove_reader(self._sock.fileno())
        self._watching = on

    def _tick(self) -> None:
        if self._closed:
            return
        self._watch(self._may_accept())
        self._timer = self._loop.call_later(TICK_SECONDS, self._tick)

    def _on_readable(self) -> None:
        if self._closed:
            return
        if not self._may_accept():
            self._watch(False)  # over its share: the peers take the next connections; the timer re-checks
            return
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # a peer took it, or the client gave up
        except OSError as exc:  # out of file descriptors and the like: let the peers accept for a while
            log.error("accepting a connection failed: %s", exc, extra={"event": "accept_error"})
            self._watch(False)
            self._shares.clear(self._slot)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(1.0, self._tick)
            return
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._open(conn))
        self._opening[task] = None
        self._shares.publish(self._slot, self.open_connections(), time.monotonic())

    async def _open(self, conn: socket.socket) -> None:
        task = asyncio.current_task()
        assert task is not None

        def factory() -> asyncio.Protocol:
            protocol = self._protocol()
            self._opening[task] = protocol
            return protocol

        try:
            _transport, protocol = await self._loop.connect_accepted_socket(factory, conn, ssl=self._ssl)
            if self._closed:  # opened after shutdown began: uvicorn's shutdown did not see it
                shutdown = getattr(protocol, "shutdown", None)
                if shutdown is not None:
                    shutdown()
        except Exception as exc:  # noqa: BLE001 - a failed TLS handshake, a client gone: that connection's problem only
            log.debug("connection not opened: %r", exc)
            conn.close()
        finally:
            del self._opening[task]

    def close(self) -> None:
        self._closed = True
        self._watch(False)
        if self._timer is not None:
            self._timer.cancel()
        self._shares.clear(self._slot)
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._opening:
            await asyncio.gather(*self._opening, return_exceptions=True)


class BalancedServer(uvicorn.Server):
    """uvicorn's server accepting through a :class:`BalancedAcceptor` on ``sock`` (run it with ``sockets=[]``)."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, shares: Shares, slot: int) -> None:
        super().__init__(config)
        self._listen_sock, self._shares, self._slot = sock, shares, slot

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan and the app state; no listener of its own
        self.servers.append(BalancedAcceptor(self._listen_sock, self._shares, self._slot, self))  # type: ignore[arg-type]
