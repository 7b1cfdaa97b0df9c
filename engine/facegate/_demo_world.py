"""`facegate demo --world`: one deployment, three jurisdictions, the packs in force composed.

Real photos through the default recognizer and the SQLite store, as in the main demo; each request
states where and when it happens, and only the packs that govern it decide (docs/legal-teams.md,
"Composing packs").
"""

from __future__ import annotations

import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from ._yaml import load_yaml
from .errors import ConfigError


def world_scenarios() -> dict[str, Any]:
    with resources.as_file(resources.files("facegate").joinpath("data", "demo-world.yaml")) as path:
        doc, problems = load_yaml(path)
    if doc is None:
        raise ConfigError(str(problems[0]))
    return doc.data  # type: ignore[no-any-return]


def run_world_demo(policies: str | None = None, *, recognizer: str = "onnx", db: str | None = None, out: Any = None) -> int:
    """Run the multi-jurisdiction scenarios; 0 when every decision and governing set is as expected."""
    from ._demo import load_image, print_outcome, shipped_pack
    from .cli import _Style
    from .gate import Gate

    out = out or sys.stdout
    style = _Style(out)
    data = world_scenarios()
    folders = [str((Path(policies) / name).resolve()) if policies else str(shipped_pack(name)) for name in data["packs"]]
    with tempfile.TemporaryDirectory(prefix="facegate-world-") as tmp:
        config = {
            "policy": folders,
            "composition": {"ungoverned": "deny"},
            "plugins": {"allow": [recognizer]},
            "recognizer": {"id": recognizer, "timeout_seconds": 60},
            "store": {"path": db or str(Path(tmp) / "facegate.db")},
        }
        with Gate.from_config(config) as gate:
            print(style.bold(f"facegate, one deployment in three jurisdictions — {gate.policy.id}"), file=out)
            print(style.dim(f"  composition revision {gate.policy.revision}"), file=out)
            mismatches = 0
            for i, sc in enumerate(data["scenarios"], 1):
                image = load_image(sc["image"])
                reference = load_image(sc["reference"]) if "reference" in sc else None
                outcome = gate.process(sc["request"], image, reference=reference)
                d = outcome.decision
                governing = [p["pack"] for p in getattr(d, "packs", ()) if p["governs"]]
                head = style.good("PERMIT") if d.permitted else style.bad("DENY")
                print(f"\n{i}. {sc['title']}", file=out)
                print(f"   {head}  {sc['request']['operation']} in {sc['request'].get('jurisdiction', '?')} on "
                      f"{str(sc['request'].get('time', '?'))[:10]}  ({d.reason})", file=out)
                for part in getattr(d, "packs", ()):
                    if part["governs"]:
                        provisions = ", ".join(f"{x['provision']} [{_grade(x)}]" for x in part["determining"]) or "—"
                        print(f"   {part['pack']} {part['revision'][:19]}: {part['decision']} ({part['reason']}) by {provisions}", file=out)
                    else:
                        print(style.dim(f"   {part['pack']}: does not govern ({part['reason']})"), file=out)
                for w in d.warnings:
                    print(f"   warning [{w.get('pack', '')}]: {w['message'].get('en', '')}", file=out)
                print_outcome(outcome, style, out)
                if sc["expect"] != d.effect or sorted(sc["packs"]) != sorted(governing):
                    mismatches += 1
                    print(f"   {style.bad('UNEXPECTED')}: expected {sc['expect']} governed by {sc['packs'] or 'no pack'}", file=out)
            report = gate.audit.verify()
            print(f"\naudit log: {report.checked} records, hash chain {'intact' if report.ok else 'BROKEN: ' + '; '.join(report.problems)}", file=out)
            if mismatches:
                print(style.bad(f"{mismatches} scenario(s) decided differently from their expectation"), file=out)
            return 0 if report.ok and not mismatches else 1


def _grade(ref: dict[str, Any]) -> str:
    grade = ref.get("grade", "")
    return "/".join(grade) if isinstance(grade, list) else str(grade or "?")
