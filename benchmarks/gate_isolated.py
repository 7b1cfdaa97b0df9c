"""The cost of isolation: the default gate (recognizer in a confined worker process) against the
in-process gate and against the recognizer called directly.

    .venv/bin/python benchmarks/gate_isolated.py [--rounds 10] [--block 4] [--repeats 3]

The request is the CAC-2023 pack's permitted "bank verifies customer with separate consent":
verify 1:1 of two real photographs (ONNX Runtime, YuNet + SFace), durable SQLite store.  Rows:

- **direct**: detect + embed of both photos on this thread, and the cosine (the baseline);
- **in-process gate** (``isolation: none``, same recognizer instance as direct);
- **isolated gate** (``isolation: required``, the default): one confined worker process.

Rows are timed in blocks (each round visits the rows in a fresh random order; each visit makes
one unmeasured call, then ``--block`` timed calls whose median is the round's figure); ratios are
to the direct row of the same round.  A second pass measures the isolated gate's **own time**
per request: its wall time minus the seconds the worker spent inside the recognizer's calls (the
worker reports them with each answer).  That own time holds deciding, the durable audit records,
the shared-memory copy and the pipe round trip.  Finally one worker's resident memory (VmRSS).
``benchmarks/run.py`` runs this as its ``isolation`` section.  Needs ``facegate-onnx`` and the
shared photographs (``$FACEGATE_FACES``).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import PACK, case_requests, fmt, load_script, spread

PHOTOS = ("obama.jpg", "obama2.jpg")
REQUEST = "bank-verifies-customer-with-separate-consent"


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(photos: Sequence[str] = PHOTOS, *, rounds: int = 10, block: int = 4, repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    if importlib.util.find_spec("facegate_onnx") is None:
        return {"status": "not installed", "note": "facegate-onnx (the default recognizer) is not installed"}
    import facegate_onnx
    import numpy as np

    import facegate
    from facegate.gate import _worker
    from facegate.store import SQLiteStore

    backends = load_script("backends")
    if not all((backends.FACES / p).exists() for p in photos):
        return {"status": "no photos", "note": f"the photographs are not in `{backends.FACES}` (set FACEGATE_FACES)"}
    image, reference = (backends.read(p) for p in photos)
    request = next(r for rid, r in case_requests() if rid == REQUEST)
    registry = facegate.load_plugins(["onnx"])
    policy = facegate.load_policy(PACK, functions=registry.functions)
    direct = facegate_onnx.make({})

    def largest(faces: Sequence[Any]) -> Any:
        return max(faces, key=lambda f: f.box[2] * f.box[3])

    def call_direct() -> float:
        vector = direct.embed(image, largest(direct.detect(image)))
        ref_vector = direct.embed(reference, largest(direct.detect(reference)))
        return float(vector @ ref_vector / np.linalg.norm(vector) / np.linalg.norm(ref_vector))

    tmp = tempfile.TemporaryDirectory(prefix="facegate-isolated-")
    stores = [SQLiteStore(Path(tmp.name) / f"{name}.db") for name in ("inprocess", "isolated")]
    in_process = facegate.Gate(policy, "onnx", registry=registry, store=stores[0], isolation="none")
    in_process._runner.recognizer = direct  # one ONNX Runtime instance in this process (two would share 2 cores)
    isolated = facegate.Gate(policy, "onnx", registry=registry, store=stores[1])
    names = {"direct": "direct (detect + embed × 2, this thread)", "inprocess": "gate, in-process (isolation: none), SQLite store",
             "isolated": "gate, isolated worker (isolation: required), SQLite store"}
    rows: dict[str, Callable[[], Any]] = {
        "direct": call_direct,
        "inprocess": functools.partial(in_process.process, request, image, reference=reference),
        "isolated": functools.partial(isolated.process, request, image, reference=reference),
    }
    try:
        for key, call in rows.items():  # warm-up, and check both gates really execute
            out = call()
            if key != "direct" and out.status != "executed":
                raise RuntimeError(f"{names[key]}: not executed ({out.status}: {out.error})")
        medians: dict[str, list[float]] = {k: [] for k in rows}
        ratios: dict[str, list[float]] = {k: [] for k in rows}
        order = random.Random(2023)
        for _ in range(repeats):
            per_round: dict[str, list[float]] = {k: [] for k in rows}
            for _ in range(rounds):
                keys = list(rows)
                order.shuffle(keys)
                for key in keys:
                    rows[key]()  # unmeasured
                    timed = []
                    for _ in range(block):
                        t0 = time.perf_counter()
                        rows[key]()
                        timed.append((time.perf_counter() - t0) * 1000)
                    per_round[key].append(statistics.median(timed))
            for key in rows:
                medians[key].append(statistics.median(per_round[key]))
                ratios[key].append(statistics.median(g / d for g, d in zip(per_round[key], per_round["direct"])))
        own = _own_time(isolated, _worker, request, image, reference, rounds * block * repeats)
        pid = isolated._pool.pids()[0]
        rss = _rss_mib(pid)
        result_rows = []
        for key in rows:
            row = {"row": names[key], "ms": spread(medians[key]), "ratio": spread(ratios[key])}
            result_rows.append(row)
            print(f"  {names[key]:<62} {fmt(row['ms'])} ms  × direct {fmt(row['ratio'], 3)}")
        print(f"  isolated gate's own time: {own['own_ms']:.2f} ms per request (wall {own['wall_ms']:.1f} ms, "
              f"worker inside the recognizer {own['recognizer_ms']:.1f} ms; {own['calls']} calls)")
        print(f"  one worker's resident memory: {rss:.0f} MiB (pid {pid}; the ONNX models loaded)")
    finally:
        isolated.close()
        in_process.close()
        for store in stores:
            store.close()
        tmp.cleanup()
    return {"status": "ok", "photos": list(photos), "rounds": rounds, "block": block, "request": REQUEST,
            "rows": result_rows, "own": own, "worker_rss_mib": rss, "confinement": isolated.confinement.describe()}


def _own_time(gate: Any, worker_module: Any, request: Any, image: Any, reference: Any, calls: int) -> dict[str, Any]:
    """Wall time of ``gate.process`` minus what the worker reports it spent inside the recognizer's calls."""
    spent: list[float] = []
    staged = worker_module.Staged
    real = staged.run

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        answer = real(self, *args, **kwargs)
        spent.append(float(answer.get("spent", 0.0)))
        return answer

    staged.run = run
    walls, inside = [], []
    try:
        gate.process(request, image, reference=reference)
        for _ in range(calls):
            spent.clear()
            t0 = time.perf_counter()
            gate.process(request, image, reference=reference)
            walls.append(time.perf_counter() - t0)
            inside.append(sum(spent))
    finally:
        staged.run = real
    own = [w - s for w, s in zip(walls, inside)]
    return {"calls": calls, "wall_ms": statistics.median(walls) * 1000, "recognizer_ms": statistics.median(inside) * 1000,
            "own_ms": statistics.median(own) * 1000, "own_ms_spread": spread([o * 1000 for o in own])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photos", nargs=2, default=PHOTOS, metavar=("PROBE", "REFERENCE"))
    args = parser.parse_args()
    result = measure(tuple(args.photos), rounds=args.rounds, block=args.block, repeats=args.repeats)
    if result["status"] != "ok":
        print(result.get("note", result["status"]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
