"""The pack author's loop on the command line: init, fmt, check, test -k -q, docs --check, decide --fail-on-deny."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facegate.cli import main
from fg_paths import EXAMPLE, ROOT

FACTS_PACK = ROOT / "policies" / "example-facts"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_init_scaffolds_a_pack_that_checks_tests_and_renders(tmp_path, capsys):
    target = tmp_path / "my-new-pack"
    assert main(["init", str(target)]) == 0
    assert main(["check", str(target)]) == 0
    assert main(["test", str(target)]) == 0
    assert main(["docs", str(target)]) == 0
    assert main(["docs", "--check", str(target)]) == 0
    first = (target / "pack.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=file://") and first.endswith("/schemas/policy.v2.json")
    schema = Path(first.split("$schema=file://", 1)[1])
    assert schema.is_file() and json.loads(schema.read_text(encoding="utf-8"))["properties"]["format"]["const"] == "facegate/policy/v2"
    assert "facts:" in (target / "pack.yaml").read_text(encoding="utf-8")
    assert main(["init", str(target)]) == 2  # never overwrites


def test_fmt_keeps_comments_and_values_and_is_idempotent(tmp_path, capsys):
    pack = tmp_path / "p"
    shutil.copytree(EXAMPLE, pack)
    rules = pack / "rules" / "rules.yaml"
    _edit(rules, "    review: {status: draft}\n  - id: ex2-no-private-spaces", "    review: {status: draft}  # keep me\n  - id: ex2-no-private-spaces")
    _edit(rules, "  - id: ex2-no-private-spaces\n    provision: EX-2\n", "  - provision: EX-2  # provision first\n    id: ex2-no-private-spaces\n")
    before = main(["check", str(pack)])
    capsys.readouterr()
    assert before == 0
    assert main(["fmt", "--check", str(pack)]) == 1
    assert main(["fmt", str(pack)]) == 0
    text = rules.read_text(encoding="utf-8")
    assert "# keep me" in text and "# provision first" in text
    assert text.index("- id: ex2-no-private-spaces") < text.index("provision: EX-2  # provision first")
    assert main(["fmt", "--check", str(pack)]) == 0
    assert main(["test", "-q", str(pack)]) == 0


def test_fmt_refuses_a_file_that_does_not_load(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n", encoding="utf-8")
    assert main(["fmt", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_test_k_and_q(capsys):
    assert main(["test", "-k", "toilet", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "toilet" in out and "verify-without-consent" not in out and "coverage not judged" in out
    assert main(["test", "-k", "adult-*", "-q", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "  pass " not in out and "1 passed" in out
    assert main(["test", "-k", "no-such-case", str(EXAMPLE)]) == 1


def test_test_q_prints_only_failures(tmp_path, capsys):
    pack = tmp_path / "p"
    shutil.copytree(EXAMPLE, pack)
    _edit(pack / "cases" / "cases.yaml", "expect: {decision: deny, determining: [], errors: []}", "expect: {decision: permit, determining: [], errors: []}")
    assert main(["test", "-q", str(pack)]) == 1
    out = capsys.readouterr().out
    assert "FAIL verify-without-consent" in out and " pass " not in out


def test_docs_check_fails_when_stale_and_docs_fails_with_a_banner_when_cases_fail(tmp_path, capsys):
    pack = tmp_path / "p"
    shutil.copytree(FACTS_PACK, pack)
    assert main(["docs", "--check", str(pack)]) == 1  # never generated
    assert main(["docs", str(pack)]) == 0
    assert main(["docs", "--check", str(pack)]) == 0
    _edit(pack / "rules" / "rules.yaml", 'message: {en: "collection with a written release"}', 'message: {en: "collection with a release"}')
    assert main(["docs", "--check", str(pack)]) == 1
    _edit(pack / "cases" / "cases.yaml", "expect: {decision: deny, determining: [exd-2-no-sale]", "expect: {decision: permit, determining: [exd-2-no-sale]")
    capsys.readouterr()
    assert main(["docs", str(pack)]) == 1
    assert "failing case" in capsys.readouterr().err
    assert "CASES FAILING OR PROVISIONS NOT COVERED" in (pack / "REVIEW.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("request_", "code"), [({"operation": "sell", "purpose": "other", "actor": {"private_entity": True}}, 1),
                                                 ({"operation": "disclose", "purpose": "other", "disclosure": {"basis": "required_by_law"}}, 0)])
def test_decide_fail_on_deny(tmp_path, capsys, request_, code):
    req = tmp_path / "r.json"
    req.write_text(json.dumps(request_), encoding="utf-8")
    assert main(["decide", "--policy", str(FACTS_PACK), "--request", str(req), "--fail-on-deny"]) == code
    assert main(["decide", "--policy", str(FACTS_PACK), "--request", str(req)]) == 0


def test_check_reports_case_file_problems_and_lint_warnings(tmp_path, capsys):
    pack = tmp_path / "p"
    shutil.copytree(EXAMPLE, pack)
    _edit(pack / "cases" / "cases.yaml", "exercises: [EX-1, EX-3]", "exercises: [EX-1, EX-33]")
    assert main(["check", str(pack)]) == 2
    assert "unknown provision `EX-33`" in capsys.readouterr().err
    _edit(pack / "cases" / "cases.yaml", "exercises: [EX-1, EX-33]", "exercises: [EX-1, EX-3]")
    _edit(pack / "rules" / "rules.yaml", "when: has(request.place) && has(request.place.type) && request.place.type == \"private_space\"",
          "when: has(request.place.type) && request.place.type == \"private_space\"")
    assert main(["check", str(pack)]) == 0
    assert "warning:" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["bomb", "deep"])
def test_hostile_pack_exits_2(tmp_path, capsys, kind):
    pack = tmp_path / "p"
    shutil.copytree(EXAMPLE, pack)
    if kind == "bomb":
        lines = ["format: facegate/policy/v1", 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
        lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
        text = "\n".join(lines) + "\n"
    else:
        text = "format: facegate/policy/v1\nx: " + "[" * 50_000 + "]" * 50_000 + "\n"
    (pack / "rules" / "hostile.yaml").write_text(text, encoding="utf-8")
    assert main(["check", str(pack)]) == 2
    assert "hostile.yaml:" in capsys.readouterr().err
