"""The command line: output, JSON shape and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from facegate.cli import main
from fg_paths import EXAMPLE

PERMIT = {"operation": "verify", "purpose": "payment", "subject": {"age": 30}, "consent": {"type": "separate", "purposes": ["payment"]}}


def test_check_ok(capsys):
    assert main(["check", str(EXAMPLE)]) == 0
    assert "example-consent 1.0.0, 5 rules" in capsys.readouterr().out


def test_check_reports_every_problem_and_exits_2(pack_copy, capsys):
    rules = pack_copy / "rules" / "rules.yaml"
    rules.write_text(rules.read_text().replace("mode: warn", "mode: loud").replace("effect: permit", "effect: allow"))
    assert main(["check", str(pack_copy)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "facegate: 2 problems found"
    assert all(line.startswith("example/rules/rules.yaml:") for line in err[:-1])


def test_decide_json_shape_and_exit_0_for_deny(tmp_path, capsys):
    req = tmp_path / "r.json"
    req.write_text(json.dumps({**PERMIT, "place": {"type": "private_space"}}))
    assert main(["decide", "--policy", str(EXAMPLE), "--request", str(req), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "deny"
    assert out["determining"][0]["rule"] == "ex2-no-private-spaces"
    assert set(out["policy"]) == {"id", "version", "revision"} and out["decision_id"]


def test_decide_text_explain(tmp_path, capsys):
    req = tmp_path / "r.json"
    req.write_text(json.dumps(PERMIT))
    assert main(["decide", "--policy", str(EXAMPLE), "--request", str(req), "--explain"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PERMIT") and "when   True" in out and "obligation retention_max_days (30 days)" in out


def test_decide_bad_request_file_is_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["decide", "--policy", str(EXAMPLE), "--request", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("facegate: error: cannot read request")


@pytest.mark.parametrize("processes", [1, 2])
def test_decide_a_json_lines_file_one_decision_per_line_in_order(tmp_path, capsysbinary, processes):
    requests = [PERMIT, {**PERMIT, "place": {"type": "private_space"}}] * 150
    lines = tmp_path / "requests.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in requests) + "\n\n{not json\n", encoding="utf-8")
    args = ["decide", "--policy", str(EXAMPLE), "--requests", str(lines), "--processes", str(processes)]
    assert main(args) == 0
    out = [json.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    assert [d["decision"] for d in out] == ["permit", "deny"] * 150 + ["deny"]  # the blank line skipped
    assert out[1]["determining"][0]["rule"] == "ex2-no-private-spaces" and len({d["decision_id"] for d in out}) == len(out)
    assert out[-1]["reason"] == "invalid_request" and out[-1]["violations"][0]["message"].startswith("request is not valid JSON")
    assert main([*args, "--fail-on-deny"]) == 1


def test_decide_a_json_lines_file_splits_at_newlines_only(tmp_path, capsysbinary):
    """A lone carriage return is JSON whitespace inside a line; a CRLF line ending is read too."""
    lines = tmp_path / "requests.jsonl"
    lines.write_bytes(json.dumps(PERMIT).replace(", ", ",\r", 1).encode() + b"\r\n" + json.dumps(PERMIT).encode() + b"\r\n")
    assert main(["decide", "--policy", str(EXAMPLE), "--requests", str(lines)]) == 0
    assert [json.loads(line)["decision"] for line in capsysbinary.readouterr().out.splitlines()] == ["permit", "permit"]


def test_decide_refuses_options_that_do_not_apply_to_a_file_of_requests(tmp_path, capsys):
    lines = tmp_path / "requests.jsonl"
    lines.write_text(json.dumps(PERMIT) + "\n", encoding="utf-8")
    for option in ("--explain", "--json", "--remedies"):
        assert main(["decide", "--policy", str(EXAMPLE), "--requests", str(lines), option]) == 2
        assert "are for --request" in capsys.readouterr().err
    assert main(["decide", "--policy", str(EXAMPLE), "--request", str(lines), "--processes", "2"]) == 2
    assert "--processes is for --requests" in capsys.readouterr().err


def test_decide_needs_one_request_or_a_file_of_them(tmp_path, capsys):
    assert main(["decide", "--policy", str(EXAMPLE), "--request", "a.json", "--requests", "b.jsonl"]) == 2
    assert "not allowed with argument --request" in capsys.readouterr().err
    assert main(["decide", "--policy", str(EXAMPLE), "--requests", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read requests" in capsys.readouterr().err


def test_usage_error_exit_2(capsys):
    assert main(["decide"]) == 2


def test_test_command_json_and_junit(tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    assert main(["test", str(EXAMPLE), "--json", "--junit", str(junit)]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["passed"] and report["coverage"]["percent"] == 100.0
    assert '<testsuite name="facegate:example-consent"' in junit.read_text()


def test_test_command_fails_on_wrong_expectation(pack_copy, capsys):
    cases = pack_copy / "cases" / "cases.yaml"
    cases.write_text(cases.read_text().replace("expect: {decision: deny, determining: [ex2-no-private-spaces]", "expect: {decision: permit, determining: [ex2-no-private-spaces]"))
    assert main(["test", str(pack_copy)]) == 1
    out = capsys.readouterr().out
    assert "FAIL toilet" in out and "decision: expected permit, got deny (forbidden)" in out


def test_test_command_reports_missing_coverage(pack_copy, capsys):
    cases = pack_copy / "cases" / "cases.yaml"
    text = cases.read_text()
    start = text.index("  - id: toilet")
    end = text.index("  - id: public-place-signage\n")
    cases.write_text(text[:start] + text[end:])
    assert main(["test", str(pack_copy)]) == 1
    assert "provision `EX-2` needs a case where it is decisive" in capsys.readouterr().out


def test_console_script_runs_from_stdin():
    proc = subprocess.run([sys.executable, "-m", "facegate.cli", "decide", "--policy", str(EXAMPLE), "--request", "-", "--json"],
                          input=json.dumps(PERMIT), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["decision"] == "permit"
