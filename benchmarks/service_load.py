"""Loopback load test of ``facegate serve``: decide throughput and latency, process against the in-process gate.

    .venv/bin/python benchmarks/service_load.py                      # workers=2, 1/8/64 clients, ~1-2 minutes
    .venv/bin/python benchmarks/service_load.py --seconds 5 --requests 3000 --workers 2 --clients 1 8 64
    .venv/bin/python benchmarks/service_load.py --json out.json

Bounded and self-stopping: every phase ends at ``--requests`` answers or ``--seconds``, whichever
comes first, and the server is stopped at the end.  Only 127.0.0.1 is contacted.

* **decide**: ``POST /v1/decide`` with a CAC-2023 case request the pack permits; each answer is
  a decision whose audit record is durable (SQLite, synchronous=FULL) before it is sent.
  Clients are asyncio tasks on keep-alive connections in *one* client process, written on raw
  sockets (an HTTP library's per-request cost would be measured instead of the service's).  The
  client shares the machine's cores with the server's workers: on 2 cores that is a real
  handicap, stated rather than hidden.  Baseline in the same run: the same decide-and-audit in
  process, one thread (``_decisions.decide``), measured before and after the HTTP phases.
* **process**: ``POST /v1/process`` (multipart: request + two JPEGs) running ONNX verify on real
  photos (obama.jpg vs obama2.jpg), one client, against ``Gate.process`` in this process on the
  same photos decoded from the same JPEGs, same store settings; one HTTP call and one in-process
  call alternate, so both see the same load.  Ratio = HTTP median / in-process median.
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


async def _decide_phase(port: int, key: str, clients: int, requests: int, seconds: float) -> dict[str, Any]:
    raw = _raw_post("/v1/decide", key, json.dumps(_request()).encode())
    conns = [await RawClient.open(port) for _ in range(clients)]
    latencies: list[float] = []
    bad = 0
    issued = 0
    deadline = 0.0

    async def worker(conn: RawClient) -> None:
        nonlocal issued, bad
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            status, body = await conn.call(raw)
            latencies.append(time.perf_counter() - t0)
            if status != 200 or b'"decision":"permit"' not in body:
                bad += 1

    for conn in conns:  # warm each connection (and each worker's first decision)
        await conn.call(raw)
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    latencies.sort()
    return {"clients": clients, "answered": len(latencies), "failed": bad, "seconds": round(elapsed, 2),
            "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2)}


def _in_process_decide(folder: Path, requests: int, seconds: float) -> dict[str, Any]:
    from facegate.service._decisions import decide
    from facegate.service._runtime import build

    rt = build(_config(folder))
    req = _request()
    try:
        for _ in range(50):
            decide(rt.gate, rt.audit, req)
        n, started = 0, time.perf_counter()
        deadline = started + seconds
        while n < requests and time.perf_counter() < deadline:
            decide(rt.gate, rt.audit, req)
            n += 1
        elapsed = time.perf_counter() - started
    finally:
        rt.store.close()
    return {"answered": n, "per_second": round(n / elapsed, 1), "mean_ms": round(1000 * elapsed / n, 3)}


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
    import numpy as np
    from PIL import Image

    from facegate.service._runtime import build

    blobs = (FACES / "obama.jpg").read_bytes(), (FACES / "obama2.jpg").read_bytes()
    body, ctype = _multipart(_request(), *blobs)
    raw = _raw_post("/v1/process", key, body, ctype)
    conn = await RawClient.open(port)
    rt = build(_config(folder))
    req = _request()
    http_times, local_times = [], []
    try:
        for i in range(rounds + 3):
            t0 = time.perf_counter()
            status, out = await conn.call(raw)
            t1 = time.perf_counter()
            if status != 200 or b'"same_person":true' not in out:
                raise RuntimeError(f"process answered {status}: {out[:300]!r}")
            image, reference = (np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs)  # the service decodes too
            outcome = rt.gate.process(req, image, reference=reference)
            t2 = time.perf_counter()
            assert outcome.status == "executed" and outcome.result.same_person
            if i >= 3:  # the first calls warm both sides
                http_times.append(t1 - t0)
                local_times.append(t2 - t1)
    finally:
        conn.close()
        rt.store.close()
    return http_times, local_times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--requests", type=int, default=4000, help="most answers per decide phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="longest decide phase")
    ap.add_argument("--process-rounds", type=int, default=15)
    ap.add_argument("--http", choices=("h11", "httptools"), default="h11", help="the server's HTTP parser")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    from fg_service import make_key

    results: dict[str, Any] = {"cpus": os.cpu_count(), "workers": args.workers, "http": args.http}
    with tempfile.TemporaryDirectory(prefix="facegate-load-") as tmp:
        folder = Path(tmp)
        config = _config(folder)
        key = make_key(config, "decide", "process")
        port = _free_port()
        log = open(folder / "serve.log", "wb")  # noqa: SIM115 -- closed below, after the server
        server = subprocess.Popen([sys.executable, "-c", "import sys; from facegate.cli import main; sys.exit(main())", "serve",
                                   "--config", str(config), "--port", str(port), "--workers", str(args.workers),
                                   "--http", args.http],
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            for _ in range(1200):  # wait up to 2 min for start-up
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            time.sleep(2.0)  # let every worker finish loading (they share the socket)
            base_folder = folder / "inproc"
            base_folder.mkdir()
            before = _in_process_decide(base_folder, args.requests, args.seconds)
            results["decide"] = [asyncio.run(_decide_phase(port, key, c, args.requests, args.seconds)) for c in args.clients]
            after = _in_process_decide(base_folder, args.requests, args.seconds)
            results["decide_in_process"] = {"before": before, "after": after,
                                            "per_second": round((before["per_second"] + after["per_second"]) / 2, 1),
                                            "mean_ms": round((before["mean_ms"] + after["mean_ms"]) / 2, 3)}
            http_times, local_times = asyncio.run(_process_interleaved(port, key, base_folder, args.process_rounds))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
            log.close()
    h, p = statistics.median(http_times), statistics.median(local_times)
    results["process"] = {"rounds": args.process_rounds, "http_median_ms": round(1000 * h, 1), "in_process_median_ms": round(1000 * p, 1),
                          "ratio": round(h / p, 3)}
    base = results["decide_in_process"]["per_second"]
    print(f"facegate serve on 127.0.0.1, {args.workers} worker(s), --http {args.http}, {results['cpus']} CPUs (client on the same machine)\n")
    print("| clients | answered | decisions/s | p50 ms | p99 ms | failed | vs in-process (1 thread) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for row in results["decide"]:
        print(f"| {row['clients']} | {row['answered']} | {row['per_second']:,} | {row['p50_ms']} | {row['p99_ms']} | {row['failed']} | "
              f"{row['per_second'] / base:.2f}× |")
    dip = results["decide_in_process"]
    print(f"\nin-process decide + durable audit record, one thread: {base:,}/s ({dip['mean_ms']} ms each; "
          f"{dip['before']['per_second']:,}/s before the HTTP phases, {dip['after']['per_second']:,}/s after)")
    pr = results["process"]
    print(f"process (ONNX verify obama vs obama2, multipart, 1 client): HTTP median {pr['http_median_ms']} ms, "
          f"in-process Gate.process (JPEG decode included), calls interleaved, {pr['in_process_median_ms']} ms: ratio {pr['ratio']}×")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
