"""`facegate demo --world`: one deployment in three jurisdictions, real photos, one intact audit log."""

from __future__ import annotations

import io

from facegate._demo_world import run_world_demo
from facegate.cli import main
from fg_paths import ROOT


def test_world_demo_decides_each_jurisdiction_by_its_own_law(tmp_path):
    out = io.StringIO()
    db = tmp_path / "world.db"
    assert run_world_demo(str(ROOT / "policies"), db=str(db), out=out) == 0
    text = out.getvalue()
    assert "UNEXPECTED" not in text
    assert text.count("PERMIT ") == 3 and text.count("DENY ") == 5
    assert "by CN25-06 [O/S]" in text and "by GDPR-9-2-a [V]" in text and "by AIA-5-1-g [V]" in text
    assert "by BIPA-15-c [M]" in text and "not_in_force_on:2025-05-25" in text
    assert "excluded_purpose:algorithm_training" in text and "PIPL" in text
    assert text.count("no_governing_pack") == 3 and "same person (cosine" in text
    assert "hash chain intact" in text
    assert main(["audit", "verify", "--db", str(db)]) == 0


def test_world_demo_is_reached_from_the_cli(tmp_path, capsys):
    assert main(["demo", "--world", "--policies", str(ROOT / "policies"), "--db", str(tmp_path / "w.db")]) == 0
    assert "one deployment in three jurisdictions" in capsys.readouterr().out
