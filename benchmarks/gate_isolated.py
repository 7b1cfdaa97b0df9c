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
worker reports them with each answer), split into the two durable audit commits, the pipe (both
hops: the request out and the answer back, their encoding and the wake-ups), the worker's own
work outside the recognizer (mapping the images, encoding the results), and the rest of the gate
(deciding, what of the image copy did not overlap the decision record's commit, decoding, the
records).  Finally one worker's resident memory (VmRSS).
``benchmarks/run.py`` runs this as its ``isolation`` section.  Needs ``facegate-onnx`` and the
shared photographs (``$FACEGATE_FACES``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import GATE_PHOTOS, GATE_REQUEST, GateSetup, Timed, fmt, gate_setup, spread, time_in_blocks

PHOTOS = GATE_PHOTOS
REQUEST = GATE_REQUEST


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(photos: Sequence[str] = PHOTOS, *, rounds: int = 10, block: int = 4, repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    setup = gate_setup(photos)
    if not isinstance(setup, GateSetup):
        return setup
    import facegate
    from facegate.gate import _worker
    from facegate.store import SQLiteStore

    tmp = tempfile.TemporaryDirectory(prefix="facegate-isolated-")
    stores = [SQLiteStore(Path(tmp.name) / f"{name}.db") for name in ("inprocess", "isolated")]
    in_process = facegate.Gate(setup.policy, "onnx", registry=setup.registry, store=stores[0], isolation="none")
    in_process._runner.recognizer = setup.direct  # one ONNX Runtime instance in this process (two would share 2 cores)
    isolated = facegate.Gate(setup.policy, "onnx", registry=setup.registry, store=stores[1])
    names = {"direct": "direct (detect + embed × 2, this thread)", "inprocess": "gate, in-process (isolation: none), SQLite store",
             "isolated": "gate, isolated worker (isolation: required), SQLite store"}
    request, image, reference = setup.request, setup.image, setup.reference
    rows: dict[str, Callable[[], Any]] = {
        "direct": setup.call_direct,
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
        for per_round in time_in_blocks(rows, rounds=rounds, block=block, repeats=repeats):
            for key in rows:
                medians[key].append(statistics.median(per_round[key]))
                ratios[key].append(statistics.median(g / d for g, d in zip(per_round[key], per_round["direct"])))
        own = _own_time(isolated, _worker, setup, rounds * block * repeats)
        pid = isolated._pool.pids()[0]
        rss = _rss_mib(pid)
        arena = isolated._pool._idle[0].arena
        arena_mib = arena.size / (1 << 20) if arena is not None else 0.0
        result_rows = []
        for key in rows:
            row = {"row": names[key], "ms": spread(medians[key]), "ratio": spread(ratios[key])}
            result_rows.append(row)
            print(f"  {names[key]:<62} {fmt(row['ms'])} ms  × direct {fmt(row['ratio'], 3)}")
        print(f"  isolated gate's own time: {own['own_ms']:.2f} ms per request (wall {own['wall_ms']:.1f} ms, "
              f"worker inside the recognizer {own['recognizer_ms']:.1f} ms; {own['calls']} calls): "
              + ", ".join(f"{k} {v:.2f}" for k, v in own["split_ms"].items()))
        print(f"  one worker's resident memory: {rss:.0f} MiB (pid {pid}; the ONNX models loaded); its images' arena {arena_mib:.0f} MiB")
    finally:
        isolated.close()
        in_process.close()
        for store in stores:
            store.close()
        tmp.cleanup()
    return {"status": "ok", "photos": list(photos), "rounds": rounds, "block": block, "request": REQUEST,
            "rows": result_rows, "own": own, "worker_rss_mib": rss, "arena_mib": arena_mib, "confinement": isolated.confinement.describe()}


def _own_time(gate: Any, worker_module: Any, setup: GateSetup, calls: int) -> dict[str, Any]:
    """Wall time of ``gate.process`` minus what the worker reports it spent inside the recognizer's calls, split.

    Per call: ``audit`` is the two durable appends (a timing proxy on the log); ``pipe`` is the
    gate's wait on the worker minus the worker's own serving time (sending and receiving, JSON,
    wake-ups); ``worker`` is the serving time minus the recognizer's calls (mapping the images,
    encoding the results, unmapping); ``gate`` is the rest.  Medians of each, over ``calls`` calls.
    """
    answers: list[tuple[float, dict[str, Any]]] = []
    real = worker_module.Worker.call

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        answer = real(self, *args, **kwargs)
        answers.append((time.perf_counter() - t0, answer))
        return answer

    worker_module.Worker.call = call
    audit = gate.audit
    gate.audit = timed = Timed(audit, ("append",))
    samples: dict[str, list[float]] = {k: [] for k in ("wall", "recognizer", "own", "audit", "pipe", "worker", "gate")}
    try:
        gate.process(setup.request, setup.image, reference=setup.reference)
        for _ in range(calls):
            answers.clear()
            timed.spent = 0.0
            t0 = time.perf_counter()
            gate.process(setup.request, setup.image, reference=setup.reference)
            wall = time.perf_counter() - t0
            waited, answer = answers[0]
            spent, served = float(answer["spent"]), float(answer["served"])
            own = wall - spent
            parts = {"wall": wall, "recognizer": spent, "own": own, "audit": timed.spent, "pipe": waited - served,
                     "worker": served - spent, "gate": own - timed.spent - (waited - spent)}
            for key, value in parts.items():
                samples[key].append(value * 1000)
    finally:
        worker_module.Worker.call = real
        gate.audit = audit
    return {"calls": calls, "wall_ms": statistics.median(samples["wall"]), "recognizer_ms": statistics.median(samples["recognizer"]),
            "own_ms": statistics.median(samples["own"]), "own_ms_spread": spread(samples["own"]),
            "split_ms": {k: statistics.median(samples[k]) for k in ("audit", "pipe", "worker", "gate")}}


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
