"""`facegate audit show|verify|export`, called through the handlers the core CLI wires in."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
from pathlib import Path

import pytest

from facegate.store import SQLiteStore, verify_lines
from facegate.store._cli import add_audit_commands


def run(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="facegate")
    add_audit_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    return args.func(args, out, err), out.getvalue(), err.getvalue()


@pytest.fixture
def db(tmp_path, make_decision):
    path = tmp_path / "cli.db"
    with SQLiteStore(path) as store:
        for i in range(1, 6):
            store.audit.append(make_decision(i))
        store.audit.append({"kind": "outcome", "decision_id": "dec-5", "time": "2025-06-01T09:00:00Z",
                            "recognizer": {"id": "fake", "version": "1.0"}, "outcome": "executed"})
    return str(path)


def test_show_prints_one_line_per_record_oldest_first(db):
    code, out, _ = run(["audit", "show", "--db", db, "--limit", "3"])
    lines = out.splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == ["#4", "#5", "#6"]
    assert "permit  CN23-05" in lines[1] and "executed  fake@1.0" in lines[2]


def test_show_filters_and_speaks_json(db):
    code, out, _ = run(["audit", "show", "--db", db, "--effect", "deny", "--json", "--limit", "0"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seq"] for r in rows] == [2, 4]
    assert all(r["record"]["effect"] == "deny" for r in rows)
    _, out, _ = run(["audit", "show", "--db", db, "--decision", "dec-5", "--json"])
    assert [json.loads(line)["record"]["kind"] for line in out.splitlines()] == ["decision", "outcome"]
    _, out, _ = run(["audit", "show", "--db", db, "--since", "2025-06-01T08:00:03Z", "--until",
                     "2025-06-01T08:00:05Z", "--kind", "decision", "--provision", "CN23-05"])
    assert [line.split()[0] for line in out.splitlines()] == ["#3", "#4"]


def test_verify_exits_0_when_intact_and_1_naming_the_record_when_not(db, tmp_path):
    code, out, _ = run(["audit", "verify", "--db", db])
    assert code == 0 and out.startswith("ok: 6 records, chain intact, head #6 ")
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET body = replace(body, 'deny', 'permit') WHERE seq = 2")
    conn.close()
    code, out, _ = run(["audit", "verify", "--db", db, "--json"])
    report = json.loads(out)
    assert code == 1 and not report["ok"] and report["problems"][0].startswith("seq 2: hash does not match")


def test_verify_checks_an_anchor(db):
    with SQLiteStore(db, readonly=True) as store:
        head = store.audit.head()
    assert head is not None
    assert run(["audit", "verify", "--db", db, "--anchor", f"{head.seq}:{head.hash}"])[0] == 0
    code, out, _ = run(["audit", "verify", "--db", db, "--anchor", f"9:{head.hash}"])
    assert code == 1 and "anchored record is missing" in out
    code, _, err = run(["audit", "verify", "--db", db, "--anchor", "nine"])
    assert code == 2 and err.startswith("error: anchor `nine`")


def test_export_writes_verifiable_json_lines(db, tmp_path):
    target = tmp_path / "siem.jsonl"
    code, _, err = run(["audit", "export", "--db", db, "-o", str(target)])
    assert code == 0 and err.strip() == "exported 6 records"
    assert verify_lines(target.read_text().splitlines()).ok
    assert run(["audit", "verify", "--jsonl", str(target)])[0] == 0
    code, out, _ = run(["audit", "export", "--db", db, "--effect", "permit"])
    assert code == 0 and [json.loads(line)["seq"] for line in out.splitlines()] == [1, 3, 5]


def test_a_missing_database_is_a_usage_error(tmp_path):
    code, out, err = run(["audit", "show", "--db", str(tmp_path / "nope.db")])
    assert code == 2 and out == "" and "no such file" in err
    assert not (tmp_path / "nope.db").exists()  # reading never creates a store


def test_the_documented_verification_recipe_checks_an_export(db, tmp_path, monkeypatch):
    """docs/evidence.md shows how to verify an export without facegate; that code must work."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "evidence.md").read_text(encoding="utf-8")
    recipe = doc.split("Anyone can check a log without facegate:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert run(["audit", "export", "--db", db, "-o", str(tmp_path / "audit.jsonl")])[0] == 0
    monkeypatch.chdir(tmp_path)
    exec(compile(recipe, "evidence.md", "exec"), {})  # noqa: S102 - our own documentation
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    (tmp_path / "audit.jsonl").write_text("\n".join([lines[0], lines[1].replace("deny", "permit"), *lines[2:]]) + "\n")
    with pytest.raises(AssertionError, match="record 2 edited"):
        exec(compile(recipe, "evidence.md", "exec"), {})  # noqa: S102
