"""Records built to crash a verifier: ``audit verify`` names them by seq instead."""

from __future__ import annotations

import argparse
import io
import sqlite3
from pathlib import Path

from facegate.store import SQLiteStore, verify_lines
from facegate.store._audit import chain_hash
from facegate.store._cli import add_audit_commands

DEPTH = 200_000


def run(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="facegate")
    add_audit_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return args.func(args, out, io.StringIO()), out.getvalue()


def _forge_nested(path: Path) -> int:
    """Append (as someone with the file would) a record nested ``DEPTH`` levels deep, correctly chained."""
    conn = sqlite3.connect(path, isolation_level=None)
    seq, prev = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    body = '{"kind":"decision","time":"2025-06-01T10:00:00.000000Z","x":' + "[" * DEPTH + "]" * DEPTH + "}"
    seq += 1
    conn.execute("INSERT INTO audit_log (seq, prev, hash, time, kind, body) VALUES (?, ?, ?, ?, ?, ?)",
                 (seq, prev, chain_hash(seq, prev, body), "2025-06-01T10:00:00.000000Z", "decision", body))
    conn.close()
    return seq


def test_verify_names_a_deeply_nested_record_in_the_database(tmp_path, make_decision):
    path = tmp_path / "log.db"
    with SQLiteStore(path) as store:
        for i in range(1, 4):
            store.audit.append(make_decision(i))
    seq = _forge_nested(path)
    with SQLiteStore(path, readonly=True) as store:
        report = store.audit.verify()
    assert not report.ok and report.checked == seq
    assert any(p.startswith(f"seq {seq}: ") and "nested" in p for p in report.problems), report.problems
    code, out = run(["audit", "verify", "--db", str(path)])
    assert code == 1 and f"seq {seq}: " in out


def test_verify_names_a_deeply_nested_record_in_an_export(tmp_path, make_decision):
    path = tmp_path / "log.db"
    with SQLiteStore(path) as store:
        for i in range(1, 4):
            store.audit.append(make_decision(i))
    seq = _forge_nested(path)
    export = tmp_path / "log.jsonl"
    with SQLiteStore(path, readonly=True) as store, export.open("w", encoding="utf-8") as fp:
        store.audit.export_jsonl(fp)
    report = verify_lines(export.read_text(encoding="utf-8").splitlines())
    assert not report.ok and report.checked == seq
    assert any(p.startswith(f"seq {seq}: ") and "nested" in p for p in report.problems), report.problems
    code, out = run(["audit", "verify", "--jsonl", str(export)])
    assert code == 1 and f"seq {seq}: " in out


def test_an_export_line_reformatted_and_nested_is_named_by_its_line(tmp_path):
    """A line that is not in the exporter's exact layout cannot be read at that depth: its line number is named."""
    line = '{"seq": 1, "prev": "' + "0" * 64 + '", "hash": "' + "1" * 64 + '", "record": ' + "[" * DEPTH + "]" * DEPTH + "}"
    report = verify_lines([line])
    assert not report.ok and report.problems == ["line 1: nested too deeply to read"]
