"""The main job end to end: real photos, the ONNX recognizer, the CAC pack, the SQLite store."""

from __future__ import annotations

import io

from fg_paths import ROOT

from facegate._demo import run_demo
from facegate.cli import main


def test_main_job_decides_as_expected_and_keeps_an_intact_log(tmp_path):
    out = io.StringIO()
    db = tmp_path / "demo.db"
    assert run_demo(str(ROOT / "policies" / "cn-cac-2023-draft"), db=str(db), out=out) == 0
    text = out.getvalue()
    assert "UNEXPECTED" not in text
    assert text.count("PERMIT") == 4 and text.count("DENY") == 4
    assert "same person (cosine" in text and "CN23-14" in text and "CN23-06" in text and "CN23-12" in text and "CN23-16" in text
    assert "hash chain intact" in text
    assert "recognizer runs in a confined worker process: no_new_privs; seccomp" in text
    assert main(["audit", "verify", "--db", str(db)]) == 0
