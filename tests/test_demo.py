"""The main job end to end: real photos, the ONNX recognizer, the CAC pack, the SQLite store."""

from __future__ import annotations

import io

from facegate._demo import run_demo
from facegate.cli import main
from fg_paths import ROOT


def test_main_job_decides_as_expected_and_keeps_an_intact_log(tmp_path):
    out = io.StringIO()
    db = tmp_path / "demo.db"
    assert run_demo(str(ROOT / "policies" / "cn-cac-2023-draft"), db=str(db), out=out) == 0
    text = out.getvalue()
    assert "UNEXPECTED" not in text
    assert text.count("PERMIT") == 5 and text.count("DENY") == 4
    assert "same person (cosine" in text and "CN23-14" in text and "CN23-06" in text and "CN23-12" in text and "CN23-16" in text
    assert "hash chain intact" in text
    assert "recognizer runs in a confined worker process: no_new_privs; seccomp" in text
    assert main(["audit", "verify", "--db", str(db)]) == 0


def _scores(text: str) -> list[tuple[str, float]]:
    import re

    return [(m.group(1), float(m.group(2))) for m in re.finditer(r"result: (same person|not the same person) \(cosine (-?[0-9.]+)", text)]


def test_the_counter_verification_uses_a_new_capture_and_a_different_face_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped pack is found from the package, not the current folder
    out = io.StringIO()
    assert run_demo(out=out) == 0
    text = out.getvalue()
    assert "re-captured: cropped" in text and "a different person" in text
    verdicts = _scores(text)
    same = [score for verdict, score in verdicts if verdict == "same person"]
    other = [score for verdict, score in verdicts if verdict == "not the same person"]
    assert len(same) == 1 and 0.363 < same[0] < 0.99  # genuinely another capture: not the enrolment photo again
    assert len(other) == 1 and other[0] < 0.363


def test_a_user_pair_of_photos_is_enrolled_and_verified(tmp_path):
    from fg_paths import SHARED

    faces = SHARED / "data" / "faces"
    out = io.StringIO()
    assert run_demo(out=out, enroll=str(faces / "obama.jpg"), verify=str(faces / "obama2.jpg")) == 0
    assert _scores(out.getvalue())[-1][0] == "same person"
    out = io.StringIO()
    run_demo(out=out, enroll=str(faces / "obama.jpg"), verify=str(faces / "biden.jpg"))
    assert _scores(out.getvalue())[-1][0] == "not the same person"
    assert main(["demo", "--enroll", str(faces / "obama.jpg")]) == 2
