"""benchmarks/run.py runs, and its engines agree with facegate before anything is timed.

No timing is asserted here: the figures live in docs/performance.md.  The peers (cedarpy, regopy,
casbin) are benchmark-only dependencies; the suite runs with or without them, and checks that a
missing one is reported as "not installed" rather than silently left out.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
PEERS = {"cedar": "cedarpy", "rego": "regopy", "casbin": "casbin"}


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = tmp_path / "results.json"
    doc = tmp_path / "performance.md"
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--json", str(out), "--output", str(doc), *args],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env={**os.environ, **(env or {})}, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    results["_stdout"] = done.stdout
    results["_doc"] = doc.read_text(encoding="utf-8")
    return results


def engines(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["key"]: e for e in results["decisions"]["engines"]}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One --quick run of every section, with whatever peers this environment has."""
    return run(tmp_path_factory.mktemp("quick"))


def test_every_section_runs(quick: dict[str, Any]) -> None:
    for section in ("decisions", "scaling", "gate", "isolation", "audit", "gallery", "backends", "cel", "validation", "speed"):
        status = quick[section].get("status", "ok")
        assert status in ("ok", "missing", "not installed", "no photos"), (section, status)
    for heading in ("## 1. Decisions", "## 2. Scaling", "## 3. The cost of the gate", "## 4. Audit append"):
        assert heading in quick["_doc"]


def test_installed_engines_agree_with_facegate(quick: dict[str, Any]) -> None:
    decisions = quick["decisions"]
    assert decisions["agreement"]["requests"] > 0 and decisions["perturbed"]["requests"] > 0
    assert {"permit", "deny"} <= set(decisions["agreement"]["effects"].values())
    found = engines(quick)
    assert "hand" in found and any(key.startswith("facegate-") for key in found)
    for key, engine in found.items():
        installed = PEERS.get(key) is None or importlib.util.find_spec(PEERS[key]) is not None
        if not installed:
            assert engine["status"] == "not installed", engine
            continue
        assert engine["status"] == "ok", engine
        assert engine["disagreements"] == 0, (key, decisions["agreement"]["rows"], decisions["perturbed"]["rows"])
        assert engine["timing"]["median_us"]["median"] > 0
    assert "agreement on the pack's case requests" in quick["_stdout"]


def test_scaling_copies_do_not_change_decisions(quick: dict[str, Any]) -> None:
    rows = quick["scaling"]["rows"]
    assert [(r["mode"], r["factor"]) for r in rows] == [("one operation", 1), ("one operation", 2), ("all operations", 1), ("all operations", 2)]
    assert rows[1]["rules"] == 2 * rows[0]["rules"] and rows[3]["rules"] == 2 * rows[2]["rules"]
    assert rows[3]["candidates"] == 2 * rows[2]["candidates"]  # unlimited copies can apply wherever their rule can
    assert rows[1]["candidates"] < rows[3]["candidates"]  # limited ones only to their operation
    assert all(not r["changed_decisions"] for r in rows)


def test_speed_section_runs(quick: dict[str, Any]) -> None:
    speed = quick["speed"]
    assert speed["status"] == "ok", speed
    assert speed["serialisation"]["permit"]["bytes"] > 0 and speed["processes"]["requests"] > 0
    assert speed["serialisation"]["deny with unmet permits"]["unmet"] >= 1  # the deny chosen for its unmet permits has some
    assert set(speed["processes"]["copy_on_write"]) == {"first_ratio", "second_ratio"}
    assert set(speed["startup"]) >= {"python -c pass", "facegate decide (CAC-2023, one request)"}


def test_a_missing_peer_is_reported_not_installed(tmp_path: Path) -> None:
    """Shadow every peer with a package that fails to import, as on a machine without them."""
    shadow = tmp_path / "shadow"
    for module in PEERS.values():
        (shadow / module).mkdir(parents=True)
        (shadow / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n", encoding="utf-8")
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH", "")) if p)
    results = run(tmp_path, "--only", "decisions", "--repeats", "1", env={"PYTHONPATH": path})
    found = engines(results)
    for key in PEERS:
        assert found[key]["status"] == "not installed"
        assert "timing" not in found[key]
        assert "not installed" in results["_doc"]
    assert found["hand"]["disagreements"] == 0
