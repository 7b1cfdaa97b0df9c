"""The cost of the gate: ``Gate.process`` against the same recognizer called directly.

    .venv/bin/python benchmarks/gate_overhead.py [--rounds 12] [--block 4] [--repeats 3]

A permitted CAC-2023 request (verify 1:1 against a reference photo) through the gate, with an
in-memory and with a durable (SQLite) audit log, against detect + embed on the same two photos
called directly on the caller's thread, and on one worker thread.  Ratios are to the direct
calls, measured in the same run; a second pass times each gate from the inside (its wall time
minus the recognizer's calls).  ``benchmarks/run.py`` runs this as section 3 of
``docs/performance.md``.  Needs ``facegate-onnx`` and the shared photographs (``$FACEGATE_FACES``).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import GATE_PHOTOS, GATE_REQUEST, GateSetup, Request, Timed, fmt, gate_setup, load_script, spread, time_in_blocks

PHOTOS = GATE_PHOTOS
REQUEST = GATE_REQUEST


def measure(photos: Sequence[str] = PHOTOS, *, rounds: int = 12, block: int = 4, repeats: int = 3, quick: bool = False,
            settle: bool = True) -> dict[str, Any]:
    """``Gate.process`` (verify with a reference photo, a permitted request) vs detect + embed called directly.

    Rows are measured in blocks: each round visits the rows in a fresh random order, and each
    visit makes one unmeasured call, then ``block`` timed calls (their median is the row's
    figure for the round).  Single interleaved calls (``settle=False, block=1``; ``--interleave``)
    would measure something else: the recognizer ran one to a few milliseconds slower when the previous
    call had come from another thread (compare the "direct, on one worker thread" row of the two
    modes), so a direct call placed after a gate call was charged for the switch, and the gate
    read faster than calling the recognizer directly.
    """
    setup = gate_setup(photos)
    if not isinstance(setup, GateSetup):
        return setup
    import facegate
    from facegate import _sandbox
    from facegate.store import SQLiteStore
    from facegate.testing import MemoryAudit

    image, reference_image, request, registry, policy = setup.image, setup.reference, setup.request, setup.registry, setup.policy
    direct, call_direct = setup.direct, setup.call_direct  # one recognizer instance for every row (see GateSetup)

    def call_on_worker() -> float:
        call = _sandbox.guarded_call(call_direct, (), 60.0)
        if call.error is not None:
            raise call.error
        return float(call.value)

    tmp = tempfile.TemporaryDirectory(prefix="facegate-gate-")
    # In-process gates (isolation none): this section is the gate's own cost; benchmarks/gate_isolated.py
    # measures the default, confined worker processes.
    memory = facegate.Gate(policy, "onnx", registry=registry, audit=MemoryAudit(), isolation="none")
    store = SQLiteStore(Path(tmp.name) / "gate.db")
    durable = facegate.Gate(policy, "onnx", registry=registry, store=store, isolation="none")
    for gate in (memory, durable):
        gate._runner.recognizer = direct  # the same instance as the direct rows (see GateSetup)
    rows: dict[str, Callable[[], Any]] = {
        "direct": call_direct,
        "direct, on one worker thread": call_on_worker,
        "gate, in-memory audit log": functools.partial(memory.process, request, image, reference=reference_image),
        "gate, SQLite store (durable audit log)": functools.partial(durable.process, request, image, reference=reference_image),
    }
    gates = {"gate, in-memory audit log": memory, "gate, SQLite store (durable audit log)": durable}
    try:
        for name, call in rows.items():  # warm-up, and check the gate really executes
            out = call()
            if name in gates and out.status != "executed":
                raise RuntimeError(f"{name}: the gate did not execute the request ({out.status}: {out.error})")
        fsync_ms = load_script("audit_append").fsync_probe(Path(tmp.name), 20 if quick else 100) * 1000
        medians: dict[str, list[float]] = {name: [] for name in rows}
        extra: dict[str, list[float]] = {name: [] for name in rows}  # paired: this row minus direct, same round
        decided: dict[str, list[float]] = {name: [] for name in rows}
        decisions_ms: dict[str, list[float]] = {name: [] for name in rows}

        def seen(name: str, out: Any) -> None:
            decisions_ms[name].append(out.decision.duration_us / 1000 if name in gates else 0.0)

        for per_round in time_in_blocks(rows, rounds=rounds, block=block, repeats=repeats, settle=settle, seen=seen):
            for name in rows:
                medians[name].append(statistics.median(per_round[name]))
                extra[name].append(statistics.median(g - d for g, d in zip(per_round[name], per_round["direct"])))
                decided[name].append(statistics.median(decisions_ms[name]))
                decisions_ms[name].clear()
        own = _gate_own_time(gates, request, image, reference_image, repeats * rounds * block)
        result: list[dict[str, Any]] = []
        for name in rows:
            ratios = [g / d for g, d in zip(medians[name], medians["direct"])]
            row: dict[str, Any] = {"row": name, "ms": spread(medians[name]), "ratio": spread(ratios), "extra_ms": spread(extra[name]),
                                   "decision_ms": spread(decided[name])}
            result.append(row)
            print(f"  {name:<45} {fmt(row['ms'])} ms  × direct {fmt(row['ratio'], 3)}  "
                  f"{row['extra_ms']['median']:+.2f} ms, decision {row['decision_ms']['median']:.2f} ms")
    finally:
        for gate in gates.values():  # its recognizer and hand-off threads end with it: later sections run without them
            gate.close()
        store.close()
        tmp.cleanup()
    return {"status": "ok", "photos": list(photos), "rounds": rounds, "block": block, "settle": settle,
            "request": REQUEST, "fsync_ms": fsync_ms, "rows": result, "own": own}


def _gate_own_time(gates: Mapping[str, Any], request: Request, image: Any, reference: Any, calls: int) -> list[dict[str, Any]]:
    """Each gate's wall time outside the recognizer's own calls, split into the audit log, the decision and the rest.

    Measured per call in a separate pass (the proxies cost about a microsecond per call), with
    no difference of two noisy 50 ms figures involved.
    """
    rows = []
    for name, gate in gates.items():
        recognizer, audit = gate._runner.recognizer, gate.audit
        timed_rec = Timed(recognizer, ("detect", "embed"))
        timed_audit = Timed(audit, ("append",))
        gate._runner.recognizer, gate.audit = timed_rec, timed_audit
        samples: dict[str, list[float]] = {"recognizer": [], "own": [], "audit": [], "decision": [], "rest": []}
        try:
            gate.process(request, image, reference=reference)
            for _ in range(calls):
                timed_rec.spent = timed_audit.spent = 0.0
                t0 = time.perf_counter()
                out = gate.process(request, image, reference=reference)
                total = time.perf_counter() - t0
                own = total - timed_rec.spent
                decision = out.decision.duration_us / 1e6
                for key, value in (("recognizer", timed_rec.spent), ("own", own), ("audit", timed_audit.spent),
                                   ("decision", decision), ("rest", own - timed_audit.spent - decision)):
                    samples[key].append(value * 1000)
        finally:
            gate._runner.recognizer, gate.audit = recognizer, audit
        row = {"row": name, "calls": calls, **{k: statistics.median(v) for k, v in samples.items()}}
        row["own_pct"] = 100 * statistics.median(o / r for o, r in zip(samples["own"], samples["recognizer"]))
        rows.append(row)
        print(f"  {name:<45} own {row['own']:.2f} ms ({row['own_pct']:.2f} % of the recognizer's {row['recognizer']:.1f} ms): "
              f"audit {row['audit']:.2f}, decision {row['decision']:.2f}, rest {row['rest']:.2f}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds per repeat (each visits every row once)")
    parser.add_argument("--block", type=int, default=4, help="timed calls per visit, after one unmeasured call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--photos", nargs=2, default=PHOTOS, metavar=("PROBE", "REFERENCE"))
    parser.add_argument("--interleave", action="store_true",
                        help="single timed calls, rows interleaved, no unmeasured call (the misleading way, for comparison)")
    args = parser.parse_args()
    result = measure(tuple(args.photos), rounds=args.rounds, block=1 if args.interleave else args.block, repeats=args.repeats,
                     settle=not args.interleave)
    if result["status"] != "ok":
        print(result.get("note", result["status"]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
