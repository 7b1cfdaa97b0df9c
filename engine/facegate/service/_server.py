"""Running the service: uvicorn, one or more worker processes, TLS/mTLS, signals.

* One worker: uvicorn serves the app in this process.
* ``workers > 1``: this process supervises that many worker processes (each its own gate, store
  connection and recognizer), restarting any that dies and forwarding SIGHUP (reload, each worker
  keeping its last good pack) and SIGTERM/SIGINT (drain) to all.  How the workers share the port
  (``accept``):

  - ``balanced`` (the default): the supervisor binds and listens on one socket; every worker
    accepts from it, one connection per wake-up and only while it holds no more open connections
    than the least-loaded live peer (counts in shared memory; ``_balance``).  64 keep-alive
    connections opened at once end up 32/32.  TLS handshakes happen in the workers.
  - ``reuseport`` (Linux): each worker listens on its own socket bound with ``SO_REUSEPORT``; the
    kernel hashes each connection to one (64 connections split 26/38 to 31/33), and a connection
    still in a dying worker's accept queue is reset.  The supervisor holds the port bound (not
    listening) so nothing else takes it.  Kept for comparison (``benchmarks/service_load.py``).
  - Windows (no ``add_reader`` on its event loop): one shared socket, uvicorn's own accepting.

  (A plain shared socket, uvicorn accepting, lets whichever worker wakes first accept a whole
  burst of connections: under a benchmark's 64 connections one worker often got all of them.)
* SIGTERM: uvicorn stops accepting, lets every in-flight request finish (each decision's audit
  record is written before its response), then the lifespan closes the store, which flushes the
  audit writer.  ``graceful_seconds`` bounds the wait.
* Memory: each worker lets glibc reuse the memory of large allocations (``keep_large_allocations``):
  decoding photos in the thread pool otherwise faults in fresh pages for every image.
* TLS: ``ssl_certfile``/``ssl_keyfile``; mutual TLS: also ``ssl_ca_certs`` and
  ``require_client_cert`` (clients without a certificate signed by that CA fail the handshake).
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
import os
import signal
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._balance import Shares


@dataclass(frozen=True)
class ServerOptions:
    config: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_ca_certs: str | None = None
    require_client_cert: bool = False
    log_json: bool | None = None  # None: the configuration's service.log.json
    graceful_seconds: float = 30.0
    http: str = "httptools"  # llhttp with the head bound of ``_http``; h11: the same bound in pure Python, slower
    keep_alive_seconds: float = 5.0
    accept: str = "balanced"  # with workers > 1: "balanced" (one shared socket, even shares) or "reuseport" (Linux)


def _uvicorn_config(app: Any, opts: ServerOptions) -> Any:
    import uvicorn

    from ._http import MAX_HEAD_BYTES

    return uvicorn.Config(
        app, host=opts.host, port=opts.port, lifespan="on", log_config=None, access_log=False,
        ssl_certfile=opts.ssl_certfile, ssl_keyfile=opts.ssl_keyfile, ssl_ca_certs=opts.ssl_ca_certs,
        ssl_cert_reqs=ssl.CERT_REQUIRED if opts.require_client_cert else ssl.CERT_NONE,
        timeout_graceful_shutdown=int(opts.graceful_seconds), timeout_keep_alive=int(opts.keep_alive_seconds),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES, server_header=False, http=_protocol(opts.http),
    )


def _protocol(http: str) -> Any:
    if http == "httptools":
        from ._http import BoundedHttpToolsProtocol

        return BoundedHttpToolsProtocol  # uvicorn takes a protocol class as well as a name
    return http


def _serve_one(opts: ServerOptions, sock: socket.socket | None, restarts: int, balance: tuple[Shares, int] | None = None) -> None:
    import uvicorn

    from .._config import read_config
    from . import _logs
    from ._app import create_app
    from ._runtime import read_settings

    config, base = read_config(opts.config)
    json_logs = read_settings(config, base).log_json if opts.log_json is None else opts.log_json
    _logs.configure(json_logs)
    app = create_app(opts.config, worker_restarts=restarts, install_signals=True)
    if balance is not None and sock is not None:
        from ._balance import BalancedServer

        server: uvicorn.Server = BalancedServer(_uvicorn_config(app, opts), sock, *balance)
        sockets: list[socket.socket] | None = []  # the acceptor has the socket; uvicorn opens none of its own
    else:
        server = uvicorn.Server(_uvicorn_config(app, opts))
        sockets = [sock] if sock is not None else None
    app.state.service.metrics.connections_open = lambda: len(server.server_state.connections)
    # What start-up built (modules, the pack, compiled functions) lives as long as the worker: moved
    # out of the collector's generations, a full collection no longer walks it (its pauses were
    # part of the decide latency's tail).
    gc.collect()
    gc.freeze()
    keep_large_allocations()
    # uvicorn re-raises the SIGTERM/SIGINT it drained on; after a clean drain that is a normal exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    server.run(sockets=sockets)


#: glibc ``mallopt`` parameters: allocations up to this size come from the heap, not their own ``mmap`` ...
MMAP_THRESHOLD = 32 * 1024 * 1024
#: ... and up to this much free memory stays in the heap instead of going back to the system.
TRIM_THRESHOLD = 128 * 1024 * 1024


def keep_large_allocations() -> bool:
    """Let this process reuse the memory of large allocations (glibc only; returns whether it applied).

    Decoding a photo allocates several buffers of megabytes (Pillow's image, the RGB array).  glibc
    gives each its own ``mmap`` until its adaptive threshold has grown -- in a new thread's arena it
    often never does -- and returns the memory on ``free``: every decode then faults in every page
    again.  Decoding the benchmark's two photos in a thread of the pool: ≈ 15 ms, ≈ 10.5 ms with these
    settings.  The cost: a worker keeps up to ``TRIM_THRESHOLD`` of freed memory for reuse.  Images
    beyond ``MMAP_THRESHOLD`` (e.g. 40-megapixel ones) still get their own mapping.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): the allocator's defaults
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


def _exit_cleanly(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _worker_main(opts: ServerOptions, sock: socket.socket | None, restarts: int, balance: tuple[Shares, int] | None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app installs its reload handler
    _serve_one(opts, sock if sock is not None else _bind(opts, reuse_port=True), restarts, balance)


def serve(opts: ServerOptions) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    if opts.require_client_cert and not opts.ssl_ca_certs:
        raise ValueError("mutual TLS needs --ssl-ca-certs (the CA that signs client certificates)")
    if (opts.ssl_certfile is None) != (opts.ssl_keyfile is None):
        raise ValueError("TLS needs both --ssl-certfile and --ssl-keyfile")
    if opts.accept not in ("balanced", "reuseport"):
        raise ValueError(f"--accept is balanced or reuseport, not {opts.accept!r}")
    if opts.accept == "reuseport" and not REUSE_PORT:
        raise ValueError("--accept reuseport needs Linux (elsewhere SO_REUSEPORT does not spread connections)")
    if opts.workers <= 1:
        _serve_one(opts, None, 0)
        return 0
    return _supervise(opts)


#: One listening socket per worker, spread by the kernel (Linux; elsewhere SO_REUSEPORT does not balance).
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
#: Workers accept from the shared socket themselves (``_balance``): needs the event loop's ``add_reader``.
BALANCE = sys.platform != "win32"


def _bind(opts: ServerOptions, *, reuse_port: bool = False, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # only sockets of this user can join the port
    sock.bind((opts.host, opts.port))
    if listen:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _supervise(opts: ServerOptions) -> int:
    # reuseport: the supervisor's socket only holds the port (bound, never listening: it gets no
    # connections); each worker binds and listens on its own.  Otherwise the workers share this one.
    reuse_port = opts.accept == "reuseport"
    sock = _bind(opts, reuse_port=reuse_port, listen=not reuse_port)
    shared = None if reuse_port else sock
    opts = dataclasses.replace(opts, port=sock.getsockname()[1])  # `--port 0`: the workers join the port it drew
    os.environ["FACEGATE_SUPERVISOR_PID"] = str(os.getpid())
    ctx = multiprocessing.get_context("spawn")
    shares = None
    if not reuse_port and BALANCE:
        from ._balance import Shares

        shares = Shares(opts.workers)
    stopping = False
    restarts = 0
    procs: list[Any] = []

    def start(slot: int) -> Any:
        if shares is not None:
            shares.clear(slot)  # a dead worker's count must not hold its peers back
        balance = (shares, slot) if shares is not None else None
        p = ctx.Process(target=_worker_main, args=(opts, shared, restarts, balance), daemon=False)
        p.start()
        return p

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    procs.extend(start(slot) for slot in range(opts.workers))
    how = "balanced accepting" if shares is not None else "SO_REUSEPORT" if reuse_port else "a shared socket"
    print(f"facegate: serving on {opts.host}:{opts.port} with {opts.workers} workers, {how} (supervisor {os.getpid()})", file=sys.stderr)
    recent: list[float] = []
    while True:
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                now = time.monotonic()
                recent = [t for t in recent if now - t < 60] + [now]
                if len(recent) > 5 * opts.workers:  # a crash loop (a broken file, a full disk): stop, say so
                    print(f"facegate: workers keep dying ({len(recent)} in a minute); stopping", file=sys.stderr)
                    stopping = True
                    forward(signal.SIGTERM, None)
                    break
                restarts += 1
                print(f"facegate: worker {p.pid} exited with {p.exitcode}; restarting ({restarts} so far)", file=sys.stderr)
                _forget_metrics(p.pid)
                procs[i] = start(i)
        if stopping:
            for p in procs:
                p.join()
                _forget_metrics(p.pid)
            sock.close()
            return 1 if len(recent) > 5 * opts.workers else 0
        time.sleep(0.2)


def _forget_metrics(pid: int | None) -> None:
    """Drop a worker's live gauges from the multiprocess metrics (``PROMETHEUS_MULTIPROC_DIR``): a dead
    worker's open connections, queue depth and the like are no longer true."""
    if pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
