"""The main job: realistic requests through the gate, on real photos, with the default recognizer."""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ._yaml import load_yaml
from .errors import ConfigError


def load_image(spec: str) -> np.ndarray:
    """``skimage:NAME`` (a photo shipped inside scikit-image's wheel) or a file path."""
    if spec.startswith("skimage:"):
        try:
            from skimage import data
        except ImportError as exc:
            raise ConfigError("the demo's photos come from scikit-image: `pip install scikit-image`") from exc
        name = spec.split(":", 1)[1]
        loader = getattr(data, name, None)
        if loader is None:
            raise ConfigError(f"scikit-image has no photo `{name}`")
        return np.asarray(loader())
    try:
        from PIL import Image
    except ImportError as exc:
        raise ConfigError("reading image files needs Pillow: `pip install pillow`") from exc
    try:
        with Image.open(spec) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise ConfigError(f"cannot read image `{spec}`: {exc}") from exc


def scenarios() -> dict[str, Any]:
    with resources.as_file(resources.files("facegate").joinpath("data", "demo.yaml")) as path:
        doc, problems = load_yaml(path)
    if doc is None:
        raise ConfigError(str(problems[0]))
    return doc.data  # type: ignore[no-any-return]


def _describe(result: Any) -> str:
    from .recognition import (
        AnalyzeResult,
        DetectResult,
        EnrollResult,
        EraseResult,
        IdentifyResult,
        VerifyResult,
    )

    if isinstance(result, DetectResult):
        boxes = ", ".join(f"[{f.box[0]:.0f},{f.box[1]:.0f} {f.box[2]:.0f}×{f.box[3]:.0f} score {f.score:.2f}]" for f in result.faces)
        return f"{len(result.faces)} face(s) {boxes}".strip()
    if isinstance(result, VerifyResult):
        score = "n/a" if result.score is None else f"{result.score:.3f}"
        verdict = "same person" if result.same_person else "not the same person"
        return f"{verdict} ({result.metric} {score}, threshold {result.threshold}) {result.reason}".strip()
    if isinstance(result, IdentifyResult):
        return ", ".join(f"{m.subject_id} ({m.score:.3f})" for m in result.matches) or f"no match {result.reason}".strip()
    if isinstance(result, EnrollResult):
        return f"template {result.template_id[:8]}… for {result.subject_id}, kept ≤ {result.retention_days} days, {result.location}"
    if isinstance(result, AnalyzeResult):
        return "; ".join(json.dumps(dict(f.attributes), ensure_ascii=False) for f in result.faces) or "no face"
    if isinstance(result, EraseResult):
        return f"{result.erased} template(s) erased"
    return repr(result)


def run_demo(policy_path: str, *, recognizer: str = "onnx", db: str | None = None, images: list[str] | None = None, out: Any = None) -> int:
    """Run every scenario; return 0 when each decision matches its expectation, 1 otherwise."""
    from .cli import _Style
    from .gate import Gate

    out = out or sys.stdout
    style = _Style(out)
    data = scenarios()
    with tempfile.TemporaryDirectory(prefix="facegate-demo-") as tmp:
        config = {
            "policy": str(Path(policy_path).resolve()),
            "plugins": {"allow": [recognizer]},
            "recognizer": {"id": recognizer, "timeout_seconds": 60},
            "store": {"path": db or str(Path(tmp) / "facegate.db")},
            "consent": {"mode": "registry-overrides"},
        }
        with Gate.from_config(config) as gate:
            for c in data.get("consents", []):
                gate.consent.grant(c["subject"], type=c["type"], given_by=c["given_by"], purposes=c["purposes"])
            print(style.bold(f"facegate main job — policy {gate.policy.id} {gate.policy.version}, recognizer {gate.info.id} {gate.info.version}"), file=out)
            print(style.dim(f"  revision {gate.policy.revision}"), file=out)
            print(style.dim(f"  recognizer runs in a {gate.confinement.describe()}"), file=out)
            mismatches = 0
            runs = list(data["scenarios"])
            for path in images or []:
                runs.append({"title": f"Your photo {path}: detection for identity verification (subject consented)", "image": path, "expect": None,
                             "request": {"operation": "detect", "purpose": "identity_verification", "jurisdiction": "CN", "subject": {"id": "customer-eileen", "age": 42}}})
            for i, sc in enumerate(runs, 1):
                image = load_image(sc["image"])
                reference = load_image(sc["reference"]) if "reference" in sc else None
                outcome = gate.process(sc["request"], image, reference=reference)
                d = outcome.decision
                head = style.good("PERMIT") if d.permitted else style.bad("DENY")
                print(f"\n{i}. {sc['title']}", file=out)
                print(f"   {head}  {sc['request']['operation']} for {sc['request']['purpose']}  ({d.reason})", file=out)
                for det in d.determining:
                    art = "article unknown" if det["article"] is None else f"Art. {det['article']}" + ("" if det["article_verified"] else "?")
                    print(f"   {det['provision']} [{art}] {' / '.join(v for k, v in det['message'].items() if k != 'detail')}", file=out)
                for v in d.violations:
                    print(f"   invalid request at {v['pointer']}: {v['message']}", file=out)
                for e in d.errors:
                    print(f"   rule error {e['rule']}: {e['error']}", file=out)
                if outcome.status == "executed":
                    print(f"   result: {_describe(outcome.result)}", file=out)
                elif outcome.status == "error":
                    print(f"   {style.bad('not executed')}: {outcome.error}", file=out)
                if outcome.enforced:
                    print(f"   enforced by the gate: {', '.join(o['type'] + (' ' + str(o['days']) + ' days' if 'days' in o else '') for o in outcome.enforced)}", file=out)
                if outcome.obligations:
                    print(f"   left to you: {', '.join(o['type'] for o in outcome.obligations)}", file=out)
                if sc.get("expect") and sc["expect"] != d.effect:
                    mismatches += 1
                    print(f"   {style.bad('UNEXPECTED')}: the scenario expects {sc['expect']}", file=out)
            report = gate.audit.verify()
            print(f"\naudit log: {report.checked} records, hash chain {'intact' if report.ok else 'BROKEN: ' + '; '.join(report.problems)}", file=out)
            if mismatches:
                print(style.bad(f"{mismatches} scenario(s) decided differently from their expectation"), file=out)
            return 0 if report.ok and not mismatches else 1
