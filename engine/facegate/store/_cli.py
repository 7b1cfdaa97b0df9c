"""``facegate audit show|verify|export``: the decision log from the command line.

The core CLI wires these in with ``add_audit_commands(subparsers)``; each sub-command stores
its handler as ``func`` (``args.func(args)`` returns the exit code).  Exit codes follow the
core's: 0 done (for ``verify``: the chain is intact), 1 ``verify`` found problems, 2 usage
or store errors.  The database (a SQLite file or a ``postgresql://`` URL) is opened read-only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from ._chain import verify_lines
from ._errors import StoreError
from ._interface import AuditReceipt
from ._open import is_url, open_store

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def add_audit_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``audit`` with ``show``, ``verify`` and ``export`` to an argparse sub-parser set."""
    audit: argparse.ArgumentParser = subparsers.add_parser("audit", help="show, verify and export the decision log",
                                  description="Show, verify and export the tamper-evident decision log.")
    commands = audit.add_subparsers(dest="audit_command", metavar="{show,verify,export}")
    commands.required = True

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--db", required=True, metavar="PATH|URL", help="the store's SQLite file or postgresql:// URL")
    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters")
    group.add_argument("--since", metavar="TIME", help="records at or after this ISO-8601 time (with offset)")
    group.add_argument("--until", metavar="TIME", help="records before this ISO-8601 time (with offset)")
    group.add_argument("--provision", metavar="ID", help="decisions determined by this provision, e.g. CN23-14")
    group.add_argument("--effect", choices=("permit", "deny"), help="decisions with this effect")
    group.add_argument("--kind", metavar="KIND",
                       help="decision, outcome, consent, enrollment or erasure")
    group.add_argument("--decision", metavar="ID", dest="decision_id", help="one decision and its outcome")

    show = commands.add_parser("show", parents=[database, filters], help="print records",
                               description="Print log records, oldest first.")
    show.add_argument("--limit", type=int, default=20, metavar="N",
                      help="the newest N matching records (default 20; 0 for all)")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(func=run_show)

    verify = commands.add_parser("verify", help="check the hash chain",
                                 description="Recompute the hash chain; exit 1 and say where if a record "
                                             "was edited, removed or reordered.")
    source = verify.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", metavar="PATH|URL", help="the store's SQLite file or postgresql:// URL")
    source.add_argument("--jsonl", metavar="FILE", help="an `audit export` file instead of the database")
    verify.add_argument("--anchor", metavar="SEQ:HASH",
                        help="a receipt kept elsewhere; detects records removed from the end")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(func=run_verify)

    export = commands.add_parser("export", parents=[database, filters], help="write JSON Lines for a SIEM",
                                 description="Write matching records as canonical JSON Lines; each line "
                                             "carries seq, prev and hash and can be verified on its own.")
    export.add_argument("--output", "-o", metavar="FILE", default="-", help="file to write (default stdout)")
    export.set_defaults(func=run_export)
    return audit


def _open_readonly(target: str) -> Any:
    return open_store(target, readonly=True, listen=False) if is_url(target) else open_store(target, readonly=True)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    names = ("since", "until", "provision", "effect", "kind", "decision_id")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _fail(message: str, err: IO[str] | None) -> int:
    print(f"error: {message}", file=err or sys.stderr)
    return EXIT_USAGE


def _summary(row: dict[str, Any]) -> str:
    record = row["record"]
    kind = record.get("kind") or "-"
    parts = [f"#{row['seq']}", str(record.get("time", "-")), kind]
    if kind == "decision":
        parts.append(str(record.get("effect", "-")))
        provisions = [d.get("provision") for d in record.get("determining") or [] if isinstance(d, dict)]
        parts.append(",".join(p for p in provisions if p) or "-")
    elif kind == "outcome":
        recognizer = record.get("recognizer") or {}
        parts.append(str(record.get("outcome", "-")))
        if isinstance(recognizer, dict) and recognizer.get("id"):
            parts.append(f"{recognizer['id']}@{recognizer.get('version', '?')}")
    elif kind in ("consent", "erasure"):
        parts.append(str(record.get("action") or record.get("reason") or "-"))
    if record.get("decision_id"):
        parts.append(f"decision={record['decision_id']}")
    return "  ".join(parts)


def run_show(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``facegate audit show``: the newest ``--limit`` matching records, oldest first."""
    out = out or sys.stdout
    try:
        with _open_readonly(args.db) as store:
            limit = args.limit if args.limit and args.limit > 0 else None
            rows = list(store.audit.query(**_filters(args), limit=limit, newest_first=True))
    except StoreError as exc:
        return _fail(str(exc), err)
    for row in reversed(rows):
        print(json.dumps(row, ensure_ascii=False, sort_keys=True) if args.json else _summary(row), file=out)
    return EXIT_OK


def _anchor(text: str | None) -> AuditReceipt | None:
    if text is None:
        return None
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise ValueError(f"anchor `{text}` is not SEQ:HASH (a sequence number and a 64-hex sha256)")
    return AuditReceipt(int(seq), digest.lower())


def run_verify(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``facegate audit verify``: exit 0 if the chain is intact, 1 with each problem if not."""
    out = out or sys.stdout
    try:
        anchor = _anchor(args.anchor)
        if getattr(args, "jsonl", None):
            with open(args.jsonl, encoding="utf-8") as fp:
                report = verify_lines(fp, anchor=anchor)
        else:
            with _open_readonly(args.db) as store:
                report = store.audit.verify(anchor)
    except (StoreError, ValueError, OSError) as exc:
        return _fail(str(exc), err)
    if args.json:
        anchor_out = None if report.head is None else {"seq": report.head.seq, "hash": report.head.hash}
        print(json.dumps({"ok": report.ok, "checked": report.checked, "problems": report.problems,
                          "head": anchor_out}), file=out)
    elif report.ok:
        head = "empty log" if report.head is None else f"head #{report.head.seq} {report.head.hash}"
        print(f"ok: {report.checked} records, chain intact, {head}", file=out)
    else:
        print(f"FAILED: {len(report.problems)} problem(s) in {report.checked} records", file=out)
        for problem in report.problems:
            print(f"  {problem}", file=out)
    return EXIT_OK if report.ok else EXIT_PROBLEMS


def run_export(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """``facegate audit export``: matching records as JSON Lines to ``--output`` (or stdout)."""
    err = err or sys.stderr
    try:
        with _open_readonly(args.db) as store:
            if args.output == "-":
                count = store.audit.export_jsonl(out or sys.stdout, **_filters(args))
            else:
                with open(args.output, "w", encoding="utf-8") as fp:
                    count = store.audit.export_jsonl(fp, **_filters(args))
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the caller's business, not an error of ours
    except (StoreError, OSError) as exc:
        return _fail(str(exc), err)
    print(f"exported {count} records", file=err)
    return EXIT_OK
