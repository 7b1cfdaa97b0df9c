"""facegate side by side: decisions against Cedar, OPA Rego, Casbin and hand-written Python; the
cost of the gate; audit append; gallery identify; scaling with the number of rules; recognizers.

    .venv/bin/python benchmarks/run.py            # the full run (a few minutes), rewrites docs/performance.md
    .venv/bin/python benchmarks/run.py --quick    # a smoke run (seconds), prints only
    .venv/bin/python benchmarks/run.py --only decisions scaling --json out.json

Peers are benchmark-only dependencies: ``.venv/bin/pip install -r benchmarks/requirements.txt``.
A peer that is not installed is reported as ``not installed`` and left out of the tables.

Every engine is first checked to give facegate's decision (permit/deny) on every benchmark
request -- the 91 requests of the CAC-2023 pack's cases -- and on perturbed copies of them;
the table of disagreements is printed before any timing, because a benchmark of wrong answers
is worthless.  Each section repeats its measurement (three times by default) and reports the
median of the repeats with their spread (min-max).  Ratios are taken within one run on one
machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH, PACK, ROOT, Request, backend_label, case_requests, fmt, load_script, spread, time_decisions  # noqa: E402
from report import _ratio, _write_doc  # noqa: E402  (benchmarks/ is not a package)
from request_set import REQUEST_SCHEMA, perturbed, pick  # noqa: E402

DOC = ROOT / "docs" / "performance.md"
COMMAND = ".venv/bin/python benchmarks/run.py"
LAST_RUN = BENCH / "last-run.json"  # the raw results behind docs/performance.md (`--render` redraws it)
SECTIONS = ("decisions", "scaling", "gate", "isolation", "audit", "gallery", "backends", "cel", "validation", "speed")
import facegate
from facegate import _compile

Decide = Callable[[Request], tuple[str, list[str]]]


# --- run settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    quick: bool
    repeats: int
    min_seconds: float  # per repeat of one engine's decision timing
    requests: int | None  # None: every case request
    variants: int  # perturbed requests for the agreement check
    scales: tuple[int, ...]
    scaling_requests: int
    gate_rounds: int  # each round times every gate row once, as a block
    gate_block: int  # timed calls per block (after one unmeasured call)
    gate_photos: tuple[str, str]
    audit_threads: tuple[int, ...]
    audit_naive: int
    audit_group: int
    backend_photos: tuple[str, ...] | None  # None: backends.py's own list
    backend_rounds: int

    @classmethod
    def make(cls, quick: bool, repeats: int | None) -> Settings:
        if quick:
            return cls(True, repeats or 2, 0.02, 12, 24, (1, 2), 3, 1, 1, ("obama-240p.jpg", "obama-240p.jpg"),
                       (1,), 20, 40, ("obama-240p.jpg",), 1)
        return cls(False, repeats or 3, 0.4, None, 300, (1, 10, 100), 6, 12, 4, ("obama.jpg", "obama2.jpg"),
                   (1, 16, 64), 400, 6000, None, 2)


# --- machine and versions -------------------------------------------------------------------


def _version(dist: str, module: str | None = None) -> str | None:
    """The installed version of ``dist``; else ``module.__version__`` (a build without metadata)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
    if module and importlib.util.find_spec(module) is not None:
        with contextlib.suppress(Exception):
            return str(importlib.import_module(module).__version__)
    return None


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    revision = "unknown"
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
        revision = head + (" (uncommitted changes in the tree)" if dirty else "")
    dists = ("facegate", "cel-python", "jsonschema-rs", "cedarpy", "regopy", "casbin", "simpleeval", "facegate-onnx",
             "onnxruntime", "openvino", "dlib", "numpy", "faiss-cpu")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "revision": revision,
        "versions": {d: _version(d, "dlib" if d == "dlib" else None) for d in dists},
        "cel_backends": list(_compile.BACKENDS),
    }


# --- engines ----------------------------------------------------------------------------------


@dataclass
class Engine:
    key: str
    label: str
    status: str = "ok"  # "ok", "not installed" or "error: ..."
    decide: Decide | None = None  # (effect, determining rule ids), for the agreement check
    timed: Callable[[Request], Any] | None = None  # the call that is timed
    version: str | None = None
    reports_rules: bool = True
    load_ms: float | None = None
    memory_kib: float | None = None  # Python heap retained by a loaded policy (tracemalloc; facegate only)
    note: str = ""
    facegate_backend: str | None = None


def facegate_engines() -> list[Engine]:
    engines = []
    for backend in _compile.BACKENDS:
        started = time.perf_counter()
        try:
            policy = facegate.load_policy(PACK, backend=backend)
        except Exception as exc:  # noqa: BLE001  a backend being written may not load the pack yet: say so
            engines.append(Engine(f"facegate-{backend}", backend_label(backend), f"error: {type(exc).__name__}: {exc}",
                                  facegate_backend=backend))
            continue
        load_ms = (time.perf_counter() - started) * 1000
        tracemalloc.start()  # a second load, traced: tracing slows it, so it is not the timed one
        traced = facegate.load_policy(PACK, backend=backend)
        retained_kib = tracemalloc.get_traced_memory()[0] / 1024
        tracemalloc.stop()
        del traced

        def decide(request: Request, policy: facegate.Policy = policy) -> tuple[str, list[str]]:
            decision = policy.decide(request)
            return decision.effect, [d["rule"] for d in decision.determining]

        engines.append(Engine(f"facegate-{backend}", backend_label(backend), decide=decide, timed=policy.decide,
                              version=facegate.__version__, load_ms=load_ms, memory_kib=retained_kib, facegate_backend=backend,
                              note="request validated against request.v1.json; full Decision (rules, obligations, ids)"))
    return engines


#: key, label, module the adapter needs, adapter module, adapter class, distribution, note
PEERS = (
    ("cedar", "Cedar (cedarpy)", "cedarpy", "peers.cac2023_cedar", "CedarEngine", "cedarpy",
     "policies parsed once; principal/resource entities and context built per request"),
    ("rego", "OPA Rego (regopy / rego-cpp)", "regopy", "peers.cac2023_rego", "RegoEngine", "regopy",
     "module compiled once into a bundle; request set as input, entrypoint queried"),
    ("casbin", "Casbin (pycasbin ABAC, eval())", "casbin", "peers.cac2023_casbin", "CasbinEngine", "casbin",
     "model and policy lines loaded once; request flattened into r.sub/r.obj/r.act per request"),
)


def peer_engines() -> list[Engine]:
    engines = []
    for key, label, needs, module_name, class_name, dist, note in PEERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = getattr(exc, "name", None)
            status = "not installed" if missing and missing.split(".")[0] == needs else f"error: {type(exc).__name__}: {exc}"
            engines.append(Engine(key, label, status, version=None, note=note))
            continue
        started = time.perf_counter()
        try:
            engine = getattr(module, class_name)()
        except Exception as exc:  # noqa: BLE001  reported, not raised
            engines.append(Engine(key, label, f"error: {type(exc).__name__}: {exc}", note=note))
            continue
        engines.append(Engine(key, label, decide=engine.decide, timed=engine.decide, version=_version(dist),
                              reports_rules=key != "casbin", load_ms=(time.perf_counter() - started) * 1000, note=note))
    hand = importlib.import_module("peers.cac2023_hand")
    engines.append(Engine("hand", "hand-written Python (floor)", decide=hand.decide, timed=hand.decide,
                          version=platform.python_version(), load_ms=0.0,
                          note="the decisive rules as plain Python on the request dict; no validation"))
    return engines


def baseline(engines: Sequence[Engine]) -> Engine:
    """The facegate figure ratios are taken to: the compiled backend when there is one."""
    ours = [e for e in engines if e.facegate_backend and e.status == "ok"]
    compiled = [e for e in ours if e.facegate_backend != "interpreter"]
    return (compiled or ours)[0]


def reference(engines: Sequence[Engine]) -> Engine:
    """The answers every engine must give: facegate on cel-python's interpreter (the semantic reference)."""
    ours = [e for e in engines if e.facegate_backend and e.status == "ok"]
    interpreted = [e for e in ours if e.facegate_backend == "interpreter"]
    return (interpreted or ours)[0]


# --- agreement ----------------------------------------------------------------------------------


def agreement(engines: Sequence[Engine], requests: Sequence[tuple[str, Request]]) -> dict[str, Any]:
    """Every engine's answer on every request, against the reference; the disagreements."""
    ref = reference(engines)
    assert ref.decide is not None
    expected = {rid: ref.decide(r) for rid, r in requests}
    counts: dict[str, dict[str, int]] = {}
    rows: list[dict[str, Any]] = []
    rule_rows: list[dict[str, Any]] = []
    answers: dict[str, dict[str, str]] = {rid: {ref.key: expected[rid][0]} for rid, _ in requests}
    for engine in engines:
        if engine.status != "ok" or engine is ref:
            continue
        assert engine.decide is not None
        effect_bad = rules_bad = 0
        for rid, request in requests:
            try:
                effect, rules = engine.decide(request)
            except Exception as exc:  # noqa: BLE001  reported, not raised
                effect, rules = f"error: {type(exc).__name__}: {exc}", []
            answers[rid][engine.key] = effect
            if effect != expected[rid][0]:
                effect_bad += 1
            elif engine.reports_rules and sorted(rules) != sorted(expected[rid][1]):
                rules_bad += 1
                rule_rows.append({"request": rid, "engine": engine.key, "expected": sorted(expected[rid][1]), "got": sorted(rules)})
        counts[engine.key] = {"disagreements": effect_bad, "rule_differences": rules_bad}
    for rid, _ in requests:
        if len(set(answers[rid].values())) > 1:
            rows.append({"request": rid, "answers": answers[rid]})
    deciding = sorted({rule for effect, rules in expected.values() for rule in rules})
    return {"reference": ref.key, "requests": len(requests), "counts": counts, "rows": rows, "rule_rows": rule_rows,
            "effects": {rid: expected[rid][0] for rid, _ in requests}, "deciding_rules": deciding}


def print_agreement(title: str, result: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    print(f"\n{title}: {result['requests']} requests, reference {labels[result['reference']]}")
    for key, c in result["counts"].items():
        extra = f", {c['rule_differences']} with other determining rules" if c["rule_differences"] else ""
        print(f"  {labels[key]:<40} {c['disagreements']} disagreements{extra}")
    if result["rows"]:
        keys = list(result["rows"][0]["answers"])
        print("  disagreements:")
        print("  " + f"{'request':<48}" + "".join(f"{k:>22}" for k in keys))
        for row in result["rows"][:40]:
            print("  " + f"{row['request'][:47]:<48}" + "".join(f"{str(row['answers'].get(k, '-'))[:21]:>22}" for k in keys))


# --- timing -------------------------------------------------------------------------------------


def decisions(settings: Settings) -> dict[str, Any]:
    engines = facegate_engines() + peer_engines()
    labels = {e.key: e.label for e in engines}
    for e in engines:
        if e.status != "ok":
            print(f"  {e.label}: {e.status}")
    everything = case_requests()
    ref = reference(engines)
    assert ref.decide is not None
    all_effects = {rid: ref.decide(r)[0] for rid, r in everything}
    chosen = pick(everything, settings.requests, all_effects)
    decisive = sum(1 for rule in facegate.load_policy(PACK).rules
                   if rule.mode == "enforce" and rule.effect in ("forbid", "permit"))
    cases = agreement(engines, chosen)
    cases["decisive_rules"] = decisive
    print_agreement("agreement on the pack's case requests", cases, labels)
    variants = perturbed([r for _, r in everything], settings.variants)
    perturbed_result = agreement(engines, [(f"perturbed-{i:03d}", r) for i, r in enumerate(variants)])
    perturbed_result["decisive_rules"] = decisive
    print_agreement("agreement on perturbed requests (facts removed or changed, schema-valid)", perturbed_result, labels)
    requests = [r for _, r in chosen]
    effects = [cases["effects"][rid] for rid, _ in chosen]
    results = []
    base = baseline(engines)
    print(f"\ntiming {len(requests)} requests ({effects.count('permit')} permit, {effects.count('deny')} deny), "
          f"{settings.repeats} repeats; ratios to {base.label}")
    for engine in engines:
        row: dict[str, Any] = {"key": engine.key, "label": engine.label, "status": engine.status, "version": engine.version,
                               "load_ms": engine.load_ms, "memory_kib": engine.memory_kib, "note": engine.note}
        counts = cases["counts"].get(engine.key, {"disagreements": 0, "rule_differences": 0})
        row["disagreements"] = counts["disagreements"] + perturbed_result["counts"].get(engine.key, {"disagreements": 0})["disagreements"]
        if engine.status == "ok":
            assert engine.timed is not None
            row["timing"] = time_decisions(engine.timed, requests, effects, settings.repeats, settings.min_seconds)
        results.append(row)
    base_median = next(r for r in results if r["key"] == base.key)["timing"]["median_us"]["median"]
    floor = next((r for r in results if r["key"] == "hand" and "timing" in r), None)
    for row in results:
        if "timing" in row:
            row["ratio"] = row["timing"]["median_us"]["median"] / base_median
            row["floor_ratio"] = row["timing"]["median_us"]["median"] / floor["timing"]["median_us"]["median"] if floor else float("nan")
    validation = time_validation(requests, settings)
    print_decisions(results, validation)
    return {"requests": len(requests), "permits": effects.count("permit"), "denies": effects.count("deny"),
            "baseline": base.key, "reference": cases["reference"], "agreement": cases, "perturbed": perturbed_result,
            "engines": results, "validation": validation}


def time_validation(requests: Sequence[Request], settings: Settings) -> dict[str, Any]:
    """Request validation alone (jsonschema_rs against request.v1.json): part of every facegate figure."""
    import jsonschema_rs

    validator = jsonschema_rs.validator_for(json.loads(REQUEST_SCHEMA.read_text(encoding="utf-8")))
    return time_decisions(validator.is_valid, requests, ["permit"] * len(requests), settings.repeats, settings.min_seconds / 4)


def print_decisions(rows: Sequence[Mapping[str, Any]], validation: Mapping[str, Any]) -> None:
    print(f"{'engine':<40}{'median µs':>30}{'p99 µs':>12}{'decisions/s':>14}{'× facegate':>12}{'disagree':>10}")
    for row in rows:
        if "timing" not in row:
            print(f"{row['label']:<40}{row['status']:>30}")
            continue
        t = row["timing"]
        print(f"{row['label']:<40}{fmt(t['median_us']):>30}{t['p99_us']['median']:>12,.1f}"
              f"{t['per_second']['median']:>14,.0f}{_ratio(row['ratio']):>12}{row['disagreements']:>10}")
    print(f"{'(request validation alone, jsonschema_rs)':<40}{fmt(validation['median_us'], 2):>30}")


# --- scaling, gate overhead: their own scripts ------------------------------------------------------


def scaling(settings: Settings) -> dict[str, Any]:
    """Decision time as the pack grows: ``benchmarks/scaling.py``."""
    return load_script("scaling").measure(settings.scales, settings.scaling_requests, settings.repeats, settings.min_seconds)


def gate_overhead(settings: Settings) -> dict[str, Any]:
    """``Gate.process`` against the recognizer called directly: ``benchmarks/gate_overhead.py``."""
    module = load_script("gate_overhead")
    return module.measure(settings.gate_photos, rounds=settings.gate_rounds, block=settings.gate_block,
                          repeats=settings.repeats, quick=settings.quick)


# --- audit append, gallery, recognizer backends, CEL: the other scripts ------------------------------


def audit(settings: Settings) -> dict[str, Any]:
    module = load_script("audit_append")
    rows = []
    with tempfile.TemporaryDirectory(prefix="facegate-audit-") as tmp:
        directory = Path(tmp)
        fsync_ms = module.fsync_probe(directory, 20 if settings.quick else 200) * 1000
        for threads in settings.audit_threads:
            group_appends = settings.audit_group if threads > 1 else settings.audit_naive
            for mode, appends in (("naive", settings.audit_naive), ("group", group_appends)):
                runs = []
                for _ in range(settings.repeats):
                    runs.append(module.run(directory, mode, threads, max(threads, appends), "mixed"))
                    for leftover in directory.glob(f"{mode}-{threads}.db*"):
                        leftover.unlink()
                row = {"threads": threads, "mode": mode, "appends": runs[0]["appends"],
                       "rate": spread([r["rate"] for r in runs]), "p50_ms": spread([r["p50_ms"] for r in runs]),
                       "p99_ms": spread([r["p99_ms"] for r in runs]), "per_commit": spread([r["per_commit"] for r in runs])}
                rows.append(row)
                print(f"  {threads:>3} threads {mode:<6} {fmt(row['rate'], 0)} appends/s, p50 {fmt(row['p50_ms'], 2)} ms, "
                      f"{row['per_commit']['median']:.1f} per fsync")
    return {"status": "ok", "fsync_ms": fsync_ms, "rows": rows, "script": "benchmarks/audit_append.py"}


def backends(settings: Settings) -> dict[str, Any]:
    module = load_script("backends")
    photos = settings.backend_photos or tuple(module.PHOTOS)
    if not all((module.FACES / p).exists() for p in photos):
        return {"status": "no photos", "note": f"the photographs are not in `{module.FACES}` (set FACEGATE_FACES)"}
    images = {p: module.read(p) for p in photos}
    rows = []
    for name, (needs, _build) in module.BACKENDS.items():
        if importlib.util.find_spec(needs) is None:
            rows.append({"backend": name, "status": "not installed"})
            continue
        if settings.quick and name != "onnx":
            continue
        runs = []
        try:
            for _ in range(settings.repeats):
                runs.append(module.measure(name, images, settings.backend_rounds, None))
        except Exception as exc:  # noqa: BLE001  reported, not raised
            rows.append({"backend": name, "status": f"error: {type(exc).__name__}: {exc}"})
            continue
        row = {"backend": name, "status": "ok", "build_ms": spread([r["build_ms"] for r in runs]),
               "detect_ms": spread([r["detect_ms"] for r in runs]), "embed_ms": spread([r["embed_ms"] for r in runs]),
               "metric": runs[0]["info"].metric, "threshold": runs[0]["info"].threshold, "scores": runs[0]["scores"]}
        rows.append(row)
        print(f"  {name:<10} detect {fmt(row['detect_ms'])} ms, embed {fmt(row['embed_ms'])} ms")
    base = next((r for r in rows if r["backend"] == "onnx" and r["status"] == "ok"), None)
    for row in rows:
        if base and row["status"] == "ok":
            row["detect_ratio"] = row["detect_ms"]["median"] / base["detect_ms"]["median"]
            row["embed_ratio"] = row["embed_ms"]["median"] / base["embed_ms"]["median"]
    return {"status": "ok", "photos": list(photos), "rounds": settings.backend_rounds, "rows": rows,
            "script": "benchmarks/backends.py"}


#: Scripts with no function interface for their figures: run as they are, their table rows parsed.
EXTERNAL: dict[str, dict[str, Any]] = {
    "gallery_identify": {
        "quick": ["--templates", "2000", "--probes", "20"], "full": [],
        "row": r"^(?P<name>\S.*?)\s{2,}(?P<p50_ms>\d+\.\d+)\s+(?P<p95_ms>\d+\.\d+)\s+(?P<per_second>[\d,]+)\b",
    },
    "cel_expressions": {
        "quick": ["--quick"], "full": [],
        "row": r"^(?P<name>hand-written|native|interpreter)\s+(?P<median_us>\d+(?:\.\d+)?)\s",
    },
    "request_validation": {
        "quick": [], "full": [],
        "row": r"^(?P<name>\S.*?)\s{2,}\d+\.\d+\s+(?P<median_us>\d+\.\d+)\s+\d+\.\d+\s+\d",
    },
}


def external(script: str, settings: Settings, timeout: float) -> dict[str, Any]:
    """Run another benchmark script ``repeats`` times as it is and gather the rows of its table."""
    path = BENCH / f"{script}.py"
    spec = EXTERNAL[script]
    if not path.exists():
        return {"status": "missing", "script": f"benchmarks/{script}.py"}
    args = spec["quick"] if settings.quick else spec["full"]
    command = " ".join([".venv/bin/python", f"benchmarks/{script}.py", *args])
    pattern = re.compile(spec["row"])
    runs: list[dict[str, dict[str, float]]] = []
    output = ""
    started = time.perf_counter()
    for _ in range(1 if settings.quick else settings.repeats):
        try:
            done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)
        except subprocess.TimeoutExpired:
            return {"status": f"error: timed out after {timeout:.0f} s", "script": f"benchmarks/{script}.py", "command": command}
        output = done.stdout
        if done.returncode != 0:
            return {"status": f"error: exit code {done.returncode}", "script": f"benchmarks/{script}.py", "command": command,
                    "output": done.stdout + done.stderr[-3000:], "rows": {}, "seconds": time.perf_counter() - started}
        rows = {}
        for line in done.stdout.splitlines():
            found = pattern.match(line)
            if found:
                values = found.groupdict()
                name = values.pop("name").strip()
                rows[name] = {k: float(v.replace(",", "")) for k, v in values.items()}
        runs.append(rows)
    names = [n for n in runs[0] if all(n in r for r in runs)]
    gathered = {n: {k: spread([r[n][k] for r in runs]) for k in runs[0][n]} for n in names}
    for n, metrics in gathered.items():
        print(f"  {n:<40} " + ", ".join(f"{k} {fmt(v, 3 if v['median'] < 10 else 1)}" for k, v in metrics.items()))
    return {"status": "ok", "script": f"benchmarks/{script}.py", "command": command, "seconds": time.perf_counter() - started,
            "rows": gathered, "output": output}




def speed_section(settings: Settings) -> dict[str, Any]:
    import speed

    return speed.measure(settings.repeats, settings.quick)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes, nothing written unless --output")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (default 3)")
    parser.add_argument("--output", type=Path, default=None, help=f"the Markdown report (default: {DOC.relative_to(ROOT)} for a full run)")
    parser.add_argument("--json", type=Path, default=None,
                        help=f"also write the raw results as JSON (a full run writes {LAST_RUN.relative_to(ROOT)})")
    parser.add_argument("--merge", type=Path, default=None, metavar="JSON",
                        help="with --only: carry the other sections over from results saved by an earlier run (the report says "
                             "which sections come from which run) and write the report and the raw results as a full run does")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="measure nothing: rewrite the report from results saved by an earlier run")
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text(encoding="utf-8"))
        _write_doc(saved, args.output or DOC)
        print(f"wrote {args.output or DOC} from {args.render}")
        return dict(saved)
    settings = Settings.make(args.quick, args.repeats)
    chosen = args.only or list(SECTIONS)
    started = time.perf_counter()
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    results: dict[str, Any] = {"command": command, "quick": args.quick, "repeats": settings.repeats,
                               "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine()}
    m = results["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, load {m['load_average']}; Python {m['python']}; facegate {m['versions']['facegate']} "
          f"({m['revision']}); CEL backends {', '.join(m['cel_backends'])}")
    steps: dict[str, Callable[[], dict[str, Any]]] = {
        "decisions": lambda: decisions(settings),
        "scaling": lambda: scaling(settings),
        "gate": lambda: gate_overhead(settings),
        "isolation": lambda: load_script("gate_isolated").measure(settings.gate_photos, rounds=settings.gate_rounds,
                                                                  block=settings.gate_block, repeats=settings.repeats, quick=settings.quick),
        "audit": lambda: audit(settings),
        "gallery": lambda: external("gallery_identify", settings, 300),
        "backends": lambda: backends(settings),
        "cel": lambda: external("cel_expressions", settings, 240),
        "validation": lambda: external("request_validation", settings, 240),
        "speed": lambda: speed_section(settings),
    }
    for name in SECTIONS:
        if name in chosen:
            print(f"\n== {name}")
            try:
                results[name] = steps[name]()
            except Exception as exc:  # noqa: BLE001  one broken section must not lose the others' figures
                results[name] = {"status": f"error: {type(exc).__name__}: {exc}"}
                print(f"  {results[name]['status']}")
    results["seconds"] = time.perf_counter() - started
    if args.merge is not None:
        saved = json.loads(args.merge.read_text(encoding="utf-8"))
        carried = dict(saved.get("carried", {}))
        for name in SECTIONS:
            if name not in chosen and name in saved:
                results[name] = saved[name]
                results.setdefault("carried", {})[name] = carried.get(name) or {
                    "date": saved["date"], "revision": saved["machine"]["revision"], "command": saved["command"]}
    complete = args.merge is not None or not args.only
    output = args.output or (DOC if complete and not args.quick else None)
    if output is not None:
        _write_doc(results, output)
        print(f"\nwrote {output}")
    raw = args.json or (LAST_RUN if complete and not args.quick else None)
    if raw is not None:
        raw.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"wrote {raw}")
    print(f"done in {results['seconds']:.0f} s")
    return results


if __name__ == "__main__":
    main()
