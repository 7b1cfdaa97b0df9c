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

#: How the demo's derived photos were made (printed beside the result, so no one mistakes them for new photos).
DERIVED = {
    "recaptured": "scikit-image's astronaut portrait re-captured: cropped to a new framing, rolled 9°, re-lit from one side "
                  "with a darker exposure curve, downscaled and recompressed as JPEG quality 45",
    "lfw_subset": "face #{n} of the LFW subset in scikit-image's wheel (25×25 grey, upscaled 8× onto a canvas): a different person",
}


def _skimage() -> Any:
    try:
        from skimage import data
    except ImportError as exc:
        raise ConfigError("the demo's photos come from scikit-image: `pip install scikit-image`") from exc
    return data


def recaptured(image: np.ndarray) -> np.ndarray:
    """A genuinely different capture of the same face: new crop, roll, lighting, scale and compression."""
    import io

    from PIL import Image

    im = Image.fromarray(image[:, :, :3] if image.ndim == 3 else image).convert("RGB")
    w, h = im.size
    im = im.crop((40, 10, w - 60, h - 70)).rotate(9, resample=Image.Resampling.BICUBIC, fillcolor=(90, 90, 90))
    arr = np.asarray(im).astype(np.float32)
    ramp = np.linspace(0.5, 1.15, arr.shape[1], dtype=np.float32)[None, :, None]  # light from the right
    arr = 255.0 * (np.clip(arr * ramp, 0, 255) / 255.0) ** 1.3
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((360, 357), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=45)
    with Image.open(io.BytesIO(buf.getvalue())) as again:
        return np.asarray(again.convert("RGB"))


def _lfw_face(n: int) -> np.ndarray:
    from PIL import Image

    faces = np.load(Path(_skimage().__file__).parent / "lfw_subset.npy")
    if not 0 <= n < 100:  # the first 100 entries are faces, the rest are not
        raise ConfigError(f"scikit-image's LFW subset has faces 0-99, not {n}")
    grey = Image.fromarray((faces[n] * 255).astype(np.uint8)).resize((200, 200), Image.Resampling.BICUBIC).convert("RGB")
    canvas = np.full((320, 320, 3), 128, np.uint8)
    canvas[60:260, 60:260] = np.asarray(grey)
    return canvas


def describe_image(spec: str) -> str | None:
    """What a derived demo photo is, or ``None`` for a photo used as it is."""
    if spec.endswith("+recaptured"):
        return DERIVED["recaptured"]
    if spec.startswith("skimage:lfw_subset:"):
        return DERIVED["lfw_subset"].format(n=spec.rsplit(":", 1)[1])
    return None


def load_image(spec: str) -> np.ndarray:
    """``skimage:NAME`` (a photo in scikit-image's wheel), ``skimage:NAME+recaptured``,
    ``skimage:lfw_subset:N``, or a file path."""
    if spec.startswith("skimage:"):
        name = spec.split(":", 1)[1]
        if name.startswith("lfw_subset:"):
            number = name.split(":", 1)[1]
            if not number.isdigit():
                raise ConfigError(f"`{spec}`: the LFW face number must be an integer")
            return _lfw_face(int(number))
        base, _, variant = name.partition("+")
        if variant not in ("", "recaptured"):
            raise ConfigError(f"`{spec}`: the only variant is `+recaptured`")
        loader = getattr(_skimage(), base, None)
        if loader is None:
            raise ConfigError(f"scikit-image has no photo `{base}`")
        image = np.asarray(loader())
        return recaptured(image) if variant else image
    try:
        from PIL import Image
    except ImportError as exc:
        raise ConfigError("reading image files needs Pillow: `pip install pillow`") from exc
    try:
        with Image.open(spec) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise ConfigError(f"cannot read image `{spec}`: {exc}") from exc


def shipped_pack(name: str = "cn-cac-2023-draft") -> Path:
    """A policy pack shipped inside the package (``facegate/data/packs``), wherever facegate is installed."""
    found = resources.files("facegate").joinpath("data", "packs", name)
    if not found.is_dir():
        raise ConfigError(f"no shipped pack `{name}`: pass --policy with the pack's folder")
    return Path(str(found))


def _pair_scenarios(enroll: str, verify: str) -> list[dict[str, Any]]:
    """The user's own pair: enrol the first photo's face, then verify the second against it."""
    base = next(s["request"] for s in scenarios()["scenarios"] if s["request"]["operation"] == "enroll")
    subject = {**base["subject"], "id": "customer-eileen"}
    return [
        {"title": f"Your photo {enroll}: enrolled for identity verification (consented)", "image": enroll, "expect": "permit",
         "request": {**base, "subject": subject}},
        {"title": f"Your photo {verify}: verified against that enrolment", "image": verify, "expect": "permit",
         "request": {**base, "operation": "verify", "subject": subject}},
    ]


def scenarios() -> dict[str, Any]:
    with resources.as_file(resources.files("facegate").joinpath("data", "demo.yaml")) as path:
        doc, problems = load_yaml(path)
    if doc is None:
        raise ConfigError(str(problems[0]))
    return doc.data  # type: ignore[no-any-return]


def print_outcome(outcome: Any, style: Any, out: Any) -> None:
    """What the gate did with a scenario: its result or error, and the duties enforced or left."""
    if outcome.status == "executed":
        print(f"   result: {_describe(outcome.result)}", file=out)
    elif outcome.status == "error":
        print(f"   {style.bad('not executed')}: {outcome.error}", file=out)
    if outcome.enforced:
        print(f"   enforced by the gate: {', '.join(o['type'] + (' ' + str(o['days']) + ' days' if 'days' in o else '') for o in outcome.enforced)}", file=out)
    if outcome.obligations:
        print(f"   left to you: {', '.join(o['type'] for o in outcome.obligations)}", file=out)


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


def run_demo(policy_path: str | None = None, *, recognizer: str = "onnx", db: str | None = None, images: list[str] | None = None,
             out: Any = None, enroll: str | None = None, verify: str | None = None) -> int:
    """Run every scenario; return 0 when each decision matches its expectation, 1 otherwise."""
    from .cli import _Style
    from .gate import Gate

    out = out or sys.stdout
    style = _Style(out)
    data = scenarios()
    if (enroll is None) != (verify is None):
        raise ConfigError("pass both --enroll and --verify (your own pair of photos)")
    policy_path = policy_path or str(shipped_pack())
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
            if enroll and verify:
                runs += _pair_scenarios(enroll, verify)
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
                for key in ("image", "reference"):
                    how = describe_image(sc[key]) if key in sc else None
                    if how:
                        print(style.dim(f"   {key}: {how}"), file=out)
                print(f"   {head}  {sc['request']['operation']} for {sc['request']['purpose']}  ({d.reason})", file=out)
                for det in d.determining:
                    art = "article unknown" if det["article"] is None else f"Art. {det['article']}" + ("" if det["article_verified"] else "?")
                    print(f"   {det['provision']} [{art}] {' / '.join(v for k, v in det['message'].items() if k != 'detail')}", file=out)
                for v in d.violations:
                    print(f"   invalid request at {v['pointer']}: {v['message']}", file=out)
                for e in d.errors:
                    print(f"   rule error {e['rule']}: {e['error']}", file=out)
                print_outcome(outcome, style, out)
                if sc.get("expect") and sc["expect"] != d.effect:
                    mismatches += 1
                    print(f"   {style.bad('UNEXPECTED')}: the scenario expects {sc['expect']}", file=out)
            report = gate.audit.verify()
            print(f"\naudit log: {report.checked} records, hash chain {'intact' if report.ok else 'BROKEN: ' + '; '.join(report.problems)}", file=out)
            if mismatches:
                print(style.bad(f"{mismatches} scenario(s) decided differently from their expectation"), file=out)
            return 0 if report.ok and not mismatches else 1
