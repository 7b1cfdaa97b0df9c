"""Scaling: decision time as the pack grows to 10× and 100× its rules (synthetic copies).

Called by ``run.py`` (section 2 of ``docs/performance.md``).  Each copy is limited to one
operation, so the engine's index by operation sees which copies can apply to a request; the
rows report how many can apply next to the time.
"""

from __future__ import annotations

import copy
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import PACK, backend_label, case_requests, fmt, time_decisions

import facegate
from facegate import _compile

OPERATIONS = ("detect", "verify", "identify", "enroll", "analyze", "erase")


def synthetic_pack(factor: int, dest: Path) -> int:
    """The pack with ``factor - 1`` copies of every rule (fresh ids), each copy limited to one operation.

    A copy is its rule with ``request.operation == "<op>"`` put first in ``when``, the operation
    chosen round-robin: it can only apply where its rule applies, so decisions do not change,
    and the engine's index by operation sees which copies can apply to a request.
    """
    import yaml

    shutil.copy(PACK / "pack.yaml", dest / "pack.yaml")
    (dest / "rules").mkdir()
    rules: list[dict[str, Any]] = []
    for path in sorted((PACK / "rules").glob("*.yaml")):
        shutil.copy(path, dest / "rules" / path.name)
        rules += (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("rules", [])
    copies = []
    for n in range(1, factor):
        for i, rule in enumerate(rules):
            twin = copy.deepcopy(rule)
            twin["id"] = f"{rule['id']}-x{n}"
            when = twin["when"] if isinstance(twin["when"], list) else [twin["when"]]
            twin["when"] = [f'request.operation == "{OPERATIONS[(n * len(rules) + i) % len(OPERATIONS)]}"', *when]
            copies.append(twin)
    if copies:  # JSON is YAML; one file keeps the write fast
        text = json.dumps({"format": "facegate/policy/v1", "rules": copies}, ensure_ascii=False)
        (dest / "rules" / "zz-synthetic.yaml").write_text(text, encoding="utf-8")
    return len(rules) * factor


def measure(scales: Sequence[int], request_count: int, repeats: int, min_seconds: float) -> dict[str, Any]:
    backend = compiled_backend()
    everything = case_requests()
    policy = facegate.load_policy(PACK, backend=backend)
    effects = {rid: policy.decide(r).effect for rid, r in everything}
    by_op: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for rid, r in everything:
        by_op.setdefault(r["operation"], []).append((rid, r))
    chosen: list[tuple[str, dict[str, Any]]] = []
    while len(chosen) < request_count and any(by_op.values()):
        for op in sorted(by_op):
            if by_op[op] and len(chosen) < request_count:
                chosen.append(by_op[op].pop(0))
    requests = [r for _, r in chosen]
    rows = []
    for factor in scales:
        with tempfile.TemporaryDirectory(prefix="facegate-scale-") as tmp:
            total = synthetic_pack(factor, Path(tmp))
            started = time.perf_counter()
            scaled = facegate.load_policy(tmp, backend=backend)
            load_s = time.perf_counter() - started
        changed = [rid for rid, r in chosen if scaled.decide(r).effect != effects[rid]]
        index = getattr(scaled, "_by_operation", None)
        candidates = statistics.fmean(len(index[r["operation"]]) for r in requests) if index else float("nan")
        timing = time_decisions(scaled.decide, requests, [effects[rid] for rid, _ in chosen], repeats, min_seconds)
        rows.append({"factor": factor, "rules": len(scaled.rules), "expected_rules": total, "candidates": candidates,
                     "load_s": load_s, "timing": timing, "changed_decisions": changed})
        print(f"  {factor:>4}×  {len(scaled.rules):>5} rules, {candidates:7.1f} can apply per request, "
              f"median {fmt(timing['median_us'])} µs, load {load_s:.1f} s" + (f", CHANGED: {changed}" if changed else ""))
    return {"backend": backend, "label": backend_label(backend), "requests": [rid for rid, _ in chosen], "rows": rows}


def compiled_backend() -> str:
    compiled = [b for b in _compile.BACKENDS if b != "interpreter"]
    return compiled[0] if compiled else _compile.DEFAULT_BACKEND
