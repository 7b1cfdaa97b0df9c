"""Loopback load test of ``facegate serve``: decide throughput and latency, process against the in-process gate.

    .venv/bin/python benchmarks/service_load.py                      # workers=2, 1/8/64 clients, ~1-2 minutes
    .venv/bin/python benchmarks/service_load.py --seconds 5 --requests 3000 --workers 2 --clients 1 8 64
    .venv/bin/python benchmarks/service_load.py --http h11 --json out.json
    .venv/bin/python benchmarks/service_load.py --accept reuseport balanced --rounds 5 --clients 64 --seconds 6 --requests 30000

Bounded and self-stopping: every phase ends at ``--requests`` answers or ``--seconds``, whichever
comes first, and the server is stopped at the end.  Only 127.0.0.1 is contacted.

* **decide**: ``POST /v1/decide`` with a CAC-2023 case request the pack permits; each answer is
  a decision whose audit record is durable (SQLite, synchronous=FULL) before it is sent.
  Clients are asyncio tasks (on uvloop when installed) on keep-alive connections in *one* client
  process, written on raw sockets (an HTTP library's per-request cost would be measured instead
  of the service's).  The client shares the machine's cores with the server's workers: on 2
  cores that is a real handicap, stated rather than hidden -- each phase reports the CPU time the
  server's workers and the client used per answer, and their share of the machine.  Audit records
  per commit (fsync) come from the service's own ``/metrics`` (workers summed).  Baselines in the
  same run, measured before and after the HTTP phases: ``Gate.decide`` in process, one thread
  (each decision waits for its own commit), and ``Gate.decide_async`` with 64 concurrent callers
  on one event loop (what the service does, without HTTP).  Each phase also records how its
  connections split across the workers -- from the kernel's socket tables (``/proc``: which
  worker process holds each connection), not from the server -- and the p99 of each worker's
  connections.  The phases start once every worker serves (each reports its
  ``facegate_http_connections_open`` series).
* **accept modes**: two ``--accept`` modes (``serve --accept``: ``balanced``, the default, and
  ``reuseport``) run the decide phases only, one fresh server per mode and round, the modes
  alternating (the order flips every round) for ``--rounds`` rounds; a table of medians and of
  every round's p99, split and the other processes' share of the machine during the phase (from
  ``/proc/stat`` minus the server's and the client's CPU: other people's work on a shared machine,
  which tells the quiet rounds from the disturbed ones) follows.  ``--new-connections``: every request on a new connection
  instead, to see what accepting costs each mode.
* **process**: ``POST /v1/process`` (multipart: request + two JPEGs) running ONNX verify on real
  photos (obama.jpg vs obama2.jpg), one client, against ``Gate.process`` in this process on the
  same photos decoded from the same JPEGs by the service's own ``decode_image``, same store
  settings; one HTTP call and one in-process call alternate, so both see the same load.
  Ratio = HTTP median / in-process median: what the HTTP exchange, the multipart parse and the
  service's threads add.  The service's own mean time per answer and in ``Gate.process`` (from
  ``/metrics``, over the same calls) say how much of the difference is inside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "policies" / "cn-cac-2023-draft"
FACES = ROOT.parent / "shared" / "data" / "faces"
sys.path.insert(0, str(ROOT / "tests"))


def _request() -> dict[str, Any]:
    from fg_service import counter_request

    return counter_request()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path) -> Path:
    import yaml

    config = {"policy": str(PACK), "plugins": {"allow": ["onnx"]}, "recognizer": {"id": "onnx", "timeout_seconds": 60},
              "store": {"path": "facegate.db"}, "service": {"keys": "keys.db", "limits": {"per_key_concurrency": 1000}}}
    path = folder / "facegate.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class RawClient:
    """One keep-alive HTTP/1.1 connection: send a prepared request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def call(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        self.writer.close()


def _raw_post(path: str, key: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _decide_phase(port: int, key: str, clients: int, requests: int, seconds: float, server_pids: list[int]) -> dict[str, Any]:
    raw = _raw_post("/v1/decide", key, json.dumps(_request()).encode())
    conns = [await RawClient.open(port) for _ in range(clients)]
    latencies: list[float] = []
    bad = 0
    issued = 0
    deadline = 0.0

    by_conn: dict[RawClient, list[float]] = {conn: [] for conn in conns}

    async def worker(conn: RawClient) -> None:
        nonlocal issued, bad
        mine = by_conn[conn]
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            status, body = await conn.call(raw)
            latency = time.perf_counter() - t0
            latencies.append(latency)
            mine.append(latency)
            if status != 200 or b'"decision":"permit"' not in body:
                bad += 1

    for conn in conns:  # warm each connection (and each worker's first decision)
        await conn.call(raw)
    owners = connection_owners(port, server_pids)  # the client's port of each connection -> the worker holding it
    server_cpu, client_cpu, machine = _cpu_seconds(server_pids), time.process_time(), _machine_busy_seconds()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    server_cpu, client_cpu = _cpu_seconds(server_pids) - server_cpu, time.process_time() - client_cpu
    others = max(0.0, _machine_busy_seconds() - machine - server_cpu - client_cpu)
    by_worker: dict[int | None, list[float]] = {}
    for conn in conns:
        by_worker.setdefault(owners.get(conn.writer.get_extra_info("sockname")[1]), []).extend(by_conn[conn])
        conn.close()
    # per worker, the one holding most connections first: (connections, p99 ms of their answers)
    workers = sorted(((sum(owners.get(c.writer.get_extra_info("sockname")[1]) == pid for c in conns), pid) for pid in by_worker),
                     key=lambda x: -x[0])
    latencies.sort()
    return {"clients": clients, "answered": len(latencies), "failed": bad, "seconds": round(elapsed, 2),
            "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
            "server_cpu_us": round(1e6 * server_cpu / len(latencies), 1), "client_cpu_us": round(1e6 * client_cpu / len(latencies), 1),
            "server_share": round(server_cpu / (elapsed * (os.cpu_count() or 1)), 3),
            "client_share": round(client_cpu / (elapsed * (os.cpu_count() or 1)), 3),
            "others_share": round(others / (elapsed * (os.cpu_count() or 1)), 3),
            "split": [n for n, _ in workers], "p99_ms_by_worker": [round(1000 * _p99(by_worker[pid]), 2) for _, pid in workers]}


async def _fresh_phase(port: int, key: str, clients: int, requests: int, seconds: float, server_pids: list[int]) -> dict[str, Any]:
    """Like the decide phase, but every request on a new connection (opened, one request, closed):
    what accepting costs, which balanced accepting does once per connection in every worker."""
    raw = _raw_post("/v1/decide", key, json.dumps(_request()).encode())
    latencies: list[float] = []
    issued = bad = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal issued, bad
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            conn = await RawClient.open(port)
            status, body = await conn.call(raw)
            conn.close()
            latencies.append(time.perf_counter() - t0)
            if status != 200 or b'"decision":"permit"' not in body:
                bad += 1

    server_cpu = _cpu_seconds(server_pids)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    server_cpu = _cpu_seconds(server_pids) - server_cpu
    latencies.sort()
    return {"clients": clients, "answered": len(latencies), "failed": bad, "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2), "p99_ms": round(1000 * _p99(latencies), 2),
            "server_cpu_us": round(1e6 * server_cpu / len(latencies), 1), "split": [], "p99_ms_by_worker": []}


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else float("nan")


def _in_process_decide(folder: Path, requests: int, seconds: float) -> dict[str, Any]:
    """``Gate.decide`` in one thread (each decision waits for its own commit), then ``decide_async``
    from 64 concurrent tasks on one event loop (decisions share commits, as in the service)."""
    from facegate.service._runtime import build

    rt = build(_config(folder))
    req = _request()
    out: dict[str, Any] = {}
    try:
        for _ in range(50):
            rt.gate.decide(req)
        n, started = 0, time.perf_counter()
        deadline = started + seconds
        while n < requests and time.perf_counter() < deadline:
            rt.gate.decide(req)
            n += 1
        elapsed = time.perf_counter() - started
        out["sync"] = {"answered": n, "per_second": round(n / elapsed, 1), "mean_ms": round(1000 * elapsed / n, 3)}

        async def concurrent() -> tuple[int, float]:
            done = 0
            end = time.perf_counter() + seconds

            async def caller() -> None:
                nonlocal done
                while done < requests and time.perf_counter() < end:
                    decision, receipt = await rt.gate.decide_async(req)
                    assert receipt is not None
                    done += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(caller() for _ in range(64)))
            return done, time.perf_counter() - t0

        commits = rt.audit.commits
        cpu = time.process_time()
        n, elapsed = _run(concurrent())
        out["async64"] = {"answered": n, "per_second": round(n / elapsed, 1), "cpu_us": round(1e6 * (time.process_time() - cpu) / n, 1),
                          "records_per_commit": round(n / max(1, rt.audit.commits - commits), 1)}
    finally:
        rt.store.close()
    return out


def _multipart(req: dict[str, Any], image: bytes, reference: bytes) -> tuple[bytes, str]:
    boundary = "facegateBench7b1e"
    parts = [(b'name="request"', b"", json.dumps(req).encode()),
             (b'name="image"; filename="a.jpg"', b"Content-Type: image/jpeg\r\n", image),
             (b'name="reference"; filename="b.jpg"', b"Content-Type: image/jpeg\r\n", reference)]
    out = io.BytesIO()
    for disposition, extra, data in parts:
        out.write(b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; " + disposition + b"\r\n" + extra + b"\r\n" + data + b"\r\n")
    out.write(b"--" + boundary.encode() + b"--\r\n")
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


async def _process_interleaved(port: int, key: str, folder: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Alternate one HTTP call and one in-process call, so both see the same machine load."""
    from facegate.service._limits import decode_image
    from facegate.service._runtime import Limits, build

    blobs = (FACES / "obama.jpg").read_bytes(), (FACES / "obama2.jpg").read_bytes()
    body, ctype = _multipart(_request(), *blobs)
    raw = _raw_post("/v1/process", key, body, ctype)
    conn = await RawClient.open(port)
    rt = build(_config(folder))
    req = _request()
    limits = Limits()
    http_times, local_times = [], []
    server: dict[str, float] = {}
    try:
        for i in range(rounds + 3):
            if i == 3:  # the first calls warm both sides; the server's own times from here on
                time.sleep(1.5)  # every worker hands its samples to /metrics once a second
                server = _process_seconds(port, key)
            t0 = time.perf_counter()
            status, out = await conn.call(raw)
            t1 = time.perf_counter()
            if status != 200 or b'"same_person":true' not in out:
                raise RuntimeError(f"process answered {status}: {out[:300]!r}")
            image, reference = (decode_image(b, limits) for b in blobs)  # the service's own decoding, so the ratio is what HTTP adds
            outcome = rt.gate.process(req, image, reference=reference)
            t2 = time.perf_counter()
            assert outcome.status == "executed" and outcome.result.same_person
            if i >= 3:  # the first calls warm both sides
                http_times.append(t1 - t0)
                local_times.append(t2 - t1)
        time.sleep(1.5)
        after = _process_seconds(port, key)
        server = {k: (after[k] - server.get(k, 0.0)) / max(1.0, after["calls"] - server.get("calls", 0.0)) for k in ("request", "gate")}
    finally:
        conn.close()
        rt.store.close()
    return http_times, local_times, server


def _process_seconds(port: int, key: str) -> dict[str, float]:
    """Seconds the service spent on ``/v1/process`` answers and in ``Gate.process`` so far, and the calls, from /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    out = {"request": 0.0, "gate": 0.0, "calls": 0.0}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("facegate_http_request_duration_seconds_sum") and 'route="/v1/process"' in name:
            out["request"] += float(value)
        elif name.startswith("facegate_http_request_duration_seconds_count") and 'route="/v1/process"' in name:
            out["calls"] += float(value)
        elif name.startswith("facegate_gate_process_seconds_sum"):
            out["gate"] += float(value)
    return out


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - without the serve extra
        return asyncio.run(coro)
    return uvloop.run(coro)


def _machine_busy_seconds() -> float:
    """CPU time all of the machine's cores spent busy so far (Linux ``/proc/stat``: all but idle and iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # user nice system idle iowait irq softirq steal


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (Linux /proc), in seconds."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def connection_owners(port: int, pids: list[int]) -> dict[int, int]:
    """Which of these processes holds each established connection to ``port``: the client's port ->
    pid (Linux ``/proc``).  Measured from the kernel's tables, not from the server."""
    inodes: dict[int, int] = {}  # socket inode -> pid
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes[int(target[8:-1])] = pid
        except OSError:
            continue
    out: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            if state == "01" and int(local.rpartition(":")[2], 16) == port and inode in inodes:
                out[int(remote.rpartition(":")[2], 16)] = inodes[inode]
    return out


def _server_pids(root: int) -> list[int]:
    """The server process and its children (the workers)."""
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == root:
                    pids.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return pids


def _audit_counts(port: int, key: str) -> tuple[float, float]:
    """(records appended, commits) summed over the workers, from /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30).text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("facegate_audit_")}
    return values.get("facegate_audit_records", 0.0), values.get("facegate_audit_commits", 0.0)


def _start_server(config: Path, port: int, args: argparse.Namespace, accept: str, metrics_dir: Path, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import sys; from facegate.cli import main; sys.exit(main())", "serve",
                             "--config", str(config), "--port", str(port), "--workers", str(args.workers),
                             "--http", args.http, "--accept", accept],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})


def _wait_workers(port: int, key: str, workers: int) -> None:
    """Until every worker serves: each reports its open connections in /metrics (one series per pid).
    A connection opened before then would go to the workers already up."""
    import httpx

    for _ in range(1200):  # up to 2 min for start-up
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=5).text
        except httpx.HTTPError:
            text = ""
        if (workers <= 1 and "facegate_http_connections_open" in text) or \
                sum(line.startswith("facegate_http_connections_open{") for line in text.splitlines()) >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError("the server's workers did not all start")


def _ab(args: argparse.Namespace) -> int:
    """Decide phases only, one server per mode and round, the modes interleaved: the accept modes' A/B."""
    from fg_service import make_key

    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.accept}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="facegate-load-") as tmp:
        folder = Path(tmp)
        config = _config(folder)
        key = make_key(config, "decide", "metrics")
        for rnd in range(args.rounds):
            for mode in args.accept if rnd % 2 == 0 else list(reversed(args.accept)):
                metrics_dir = folder / f"metrics-{rnd}-{mode}"
                metrics_dir.mkdir()
                port = _free_port()
                with open(folder / f"serve-{rnd}-{mode}.log", "wb") as log:
                    server = _start_server(config, port, args, mode, metrics_dir, log)
                    try:
                        _wait_workers(port, key, args.workers)
                        pids = _server_pids(server.pid)
                        for c in args.clients:
                            phase = _fresh_phase if args.new_connections else _decide_phase
                            row = _run(phase(port, key, c, args.requests, args.seconds, pids))
                            row["round"], row["accept"] = rnd + 1, mode
                            rows[mode].append(row)
                            print(f"round {rnd + 1} {mode:>9}: {c} clients {row['per_second']:,}/s p50 {row['p50_ms']} ms "
                                  f"p99 {row['p99_ms']} ms split {'/'.join(map(str, row['split'])) or '-'} (p99 by worker "
                                  f"{' / '.join(map(str, row['p99_ms_by_worker'])) or '-'} ms) server CPU "
                                  f"{row['server_cpu_us']} µs/answer, other processes {100 * row.get('others_share', 0):.0f} % "
                                  f"of the machine, failed {row['failed']}", flush=True)
                    finally:
                        server.send_signal(signal.SIGTERM)
                        server.wait(120)
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(f"\n{args.rounds} rounds, modes interleaved (order alternating); load average (1/5/15 min) {load_before} before, {load_after} after\n")
    print("| accept | clients | rounds | decisions/s (median) | p50 ms (median) | p99 ms (median) | p99 ms per round | p99 ≤ 20 ms "
          "| splits | server CPU µs/answer (median) | other processes' share of the machine per round |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---|---:|---|")
    for mode, mode_rows in rows.items():
        for c in args.clients:
            r = [row for row in mode_rows if row["clients"] == c]
            med = {k: statistics.median(row[k] for row in r) for k in ("per_second", "p50_ms", "p99_ms", "server_cpu_us")}
            others = ", ".join(f"{100 * row.get('others_share', 0):.0f} %" for row in r)
            print(f"| {mode} | {c} | {len(r)} | {med['per_second']:,.0f} | {med['p50_ms']:.1f} | {med['p99_ms']:.1f} | "
                  f"{', '.join(str(row['p99_ms']) for row in r)} | {sum(row['p99_ms'] <= 20 for row in r)}/{len(r)} | "
                  f"{', '.join('/'.join(map(str, row['split'])) for row in r) if r[0]['split'] else '-'} | {med['server_cpu_us']:.1f} | "
                  f"{others} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average_before": load_before, "load_average_after": load_after, "rows": rows}, indent=2),
                                   encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--requests", type=int, default=4000, help="most answers per decide phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="longest decide phase")
    ap.add_argument("--process-rounds", type=int, default=15)
    ap.add_argument("--http", choices=("h11", "httptools"), default="httptools", help="the server's HTTP parser")
    ap.add_argument("--accept", nargs="+", choices=("balanced", "reuseport"), default=["balanced"],
                    help="how the workers share the port (serve --accept); two modes: an interleaved A/B of the decide phases")
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds (with two --accept modes)")
    ap.add_argument("--new-connections", action="store_true", help="A/B only: every request on a new connection (the cost of accepting)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if len(args.accept) > 1:
        return _ab(args)

    from fg_service import make_key

    results: dict[str, Any] = {"cpus": os.cpu_count(), "workers": args.workers, "http": args.http, "accept": args.accept[0],
                               "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="facegate-load-") as tmp:
        folder = Path(tmp)
        config = _config(folder)
        key = make_key(config, "decide", "process", "metrics")
        metrics_dir = folder / "metrics"
        metrics_dir.mkdir()
        port = _free_port()
        log = open(folder / "serve.log", "wb")  # noqa: SIM115 -- closed below, after the server
        server = _start_server(config, port, args, args.accept[0], metrics_dir, log)
        try:
            _wait_workers(port, key, args.workers)
            base_folder = folder / "inproc"
            base_folder.mkdir()
            before = _in_process_decide(base_folder, args.requests, args.seconds)
            pids = _server_pids(server.pid)
            results["decide"] = []
            for c in args.clients:
                records, commits = _audit_counts(port, key)
                row = _run(_decide_phase(port, key, c, args.requests, args.seconds, pids))
                time.sleep(1.5)  # every worker refreshes its audit gauges once a second
                records2, commits2 = _audit_counts(port, key)
                row["records_per_commit"] = round((records2 - records) / max(1.0, commits2 - commits), 1)
                results["decide"].append(row)
            after = _in_process_decide(base_folder, args.requests, args.seconds)
            results["decide_in_process"] = {
                "before": before, "after": after,
                "per_second": round((before["sync"]["per_second"] + after["sync"]["per_second"]) / 2, 1),
                "mean_ms": round((before["sync"]["mean_ms"] + after["sync"]["mean_ms"]) / 2, 3),
                "async64_per_second": round((before["async64"]["per_second"] + after["async64"]["per_second"]) / 2, 1),
                "async64_cpu_us": round((before["async64"]["cpu_us"] + after["async64"]["cpu_us"]) / 2, 1)}
            http_times, local_times, server_process = _run(_process_interleaved(port, key, base_folder, args.process_rounds))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
            log.close()
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    h, p = statistics.median(http_times), statistics.median(local_times)
    results["process"] = {"rounds": args.process_rounds, "http_median_ms": round(1000 * h, 1), "in_process_median_ms": round(1000 * p, 1),
                          "ratio": round(h / p, 3), "server_request_mean_ms": round(1000 * server_process["request"], 1),
                          "server_gate_process_mean_ms": round(1000 * server_process["gate"], 1)}
    dip = results["decide_in_process"]
    base = dip["async64_per_second"]
    print(f"facegate serve on 127.0.0.1, {args.workers} worker(s), --http {args.http}, --accept {args.accept[0]}, {results['cpus']} CPUs (client on the same machine); "
          f"load average (1/5/15 min) {results['load_average_before']} before, {results['load_average_after']} after\n")
    print("| clients | answered | decisions/s | p50 ms | p99 ms | connections per worker (their p99) | failed | records/commit | server CPU µs/answer | client CPU µs/answer "
          "| server / client share of the machine | vs in-process decide_async ×64 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results["decide"]:
        print(f"| {row['clients']} | {row['answered']} | {row['per_second']:,} | {row['p50_ms']} | {row['p99_ms']} | {'/'.join(map(str, row['split']))} ({' / '.join(map(str, row['p99_ms_by_worker']))} ms) | {row['failed']} | "
              f"{row['records_per_commit']} | {row['server_cpu_us']} | {row['client_cpu_us']} | "
              f"{100 * row['server_share']:.0f} % / {100 * row['client_share']:.0f} % | {row['per_second'] / base:.2f}× |")
    print(f"\nin process, same machine: Gate.decide one thread {dip['per_second']:,}/s ({dip['mean_ms']} ms each, its own commit; "
          f"{dip['before']['sync']['per_second']:,}/s before the HTTP phases, {dip['after']['sync']['per_second']:,}/s after); "
          f"Gate.decide_async ×64 on one loop {base:,}/s ({dip['async64_cpu_us']} µs CPU each; "
          f"{dip['before']['async64']['per_second']:,}/s before, {dip['after']['async64']['per_second']:,}/s after)")
    pr = results["process"]
    print(f"process (ONNX verify obama vs obama2, multipart, 1 client): HTTP median {pr['http_median_ms']} ms, "
          f"in-process Gate.process (JPEG decode included), calls interleaved, {pr['in_process_median_ms']} ms: ratio {pr['ratio']}×; "
          f"the server's own means: request {pr['server_request_mean_ms']} ms, of which Gate.process {pr['server_gate_process_mean_ms']} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
