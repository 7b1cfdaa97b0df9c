"""A pack's own properties (``properties.yaml`` beside ``pack.yaml``), proved by ``facegate test``.

Format (schema ``properties.v1.json``)::

    format: facegate/properties/v1
    properties:
      - id: no-permit-in-private-spaces
        provisions: [CN23-06]
        description: no device in a private space is ever permitted to process faces
        property: >-
          !(decision.permitted && has(request.place) && has(request.place.type)
            && request.place.type == "private_space") || request.operation == "erase"

A property is CEL over ``request`` and ``decision`` (``effect``, ``permitted``, ``reason``,
``rules["rule-id"]``, ``provisions``) that must be true for every valid request; ``!(A) || B``
reads "whenever A, then B".  It passes when proved; ``expect: counterexample`` records a known
gap (it fails once the gap closes, so the note gets revisited).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _schema
from .._yaml import load_yaml
from ..errors import PolicyError

PROPERTIES_FILE = "properties.yaml"


@dataclass
class PropertyResult:
    id: str
    passed: bool
    status: str  # proved | counterexample | unknown | not-run
    detail: str
    counterexample: dict[str, Any] | None = None
    file: str = ""
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def properties_path(policy: Any) -> Path | None:
    root = policy.pack.root if policy.pack.root.is_dir() else policy.pack.root.parent
    path = root / PROPERTIES_FILE
    return path if path.is_file() else None


def load_properties(path: Path) -> tuple[list[tuple[dict[str, Any], int | None]], str]:
    doc, problems = load_yaml(path, str(path))
    if doc is None:
        raise PolicyError(problems)
    problems += [doc.problem(p, m) for p, m in _schema.violations("properties.v1.json", doc.data)]
    if problems:
        raise PolicyError(problems)
    return [(prop, doc.locate(f"/properties/{i}")[0]) for i, prop in enumerate(doc.data["properties"])], doc.path


def run_properties(policy: Any) -> list[PropertyResult]:
    """Prove every property of the pack; an empty list when it has no ``properties.yaml``."""
    path = properties_path(policy)
    if path is None:
        return []
    props, display = load_properties(path)
    try:
        from ._model import PolicyModel
        from ._prove import prove
    except ImportError:
        return [PropertyResult(p["id"], False, "not-run", "z3-solver is not installed: pip install 'facegate[analysis]'", None, display, line)
                for p, line in props]
    models: dict[str | None, Any] = {}
    out = []
    for prop, line in props:
        day = prop.get("day")
        model = models.get(day)
        if model is None:
            model = models[day] = PolicyModel(policy, day=day)
        r = prove(policy, prop["property"], model=model, day=day)
        expect = prop.get("expect", "proved")
        passed = r.status == expect
        detail = r.detail if passed else f"expected {expect}, got {r.status}: {r.detail}"
        out.append(PropertyResult(prop["id"], passed, r.status, detail, r.counterexample, display, line))
    return out


def print_properties(results: list[PropertyResult], style: Any) -> None:
    import json

    if not results:
        return
    print(style.bold("  properties (every valid request)"))
    for r in results:
        mark = style.good("proved") if r.passed and r.status == "proved" else (style.good("pass") if r.passed else style.bad("FAIL"))
        print(f"    {mark} {r.id}" + ("" if r.passed else f"  ({r.file}:{r.line}) {r.detail}"))
        if not r.passed and r.counterexample is not None:
            print("         counterexample: " + json.dumps(r.counterexample, ensure_ascii=False))
