"""``facegate store migrate|copy``: operating the evidence store from the command line.

``migrate TARGET`` brings a store's schema to this facegate's version (a PostgreSQL database is
created empty by its administrator; this adds the tables); ``copy SRC DST`` moves a deployment's
SQLite file into a PostgreSQL database and verifies the copied chain.  Exit codes as the core's:
0 done, 1 the copied chain did not verify, 2 usage or store errors (one line, naming the store).
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from ._cli import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from ._errors import StoreError
from ._open import is_url


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``store`` with ``migrate`` and ``copy`` to the core CLI's sub-parsers."""
    store: argparse.ArgumentParser = subparsers.add_parser("store", help="migrate the evidence store's schema, copy SQLite to PostgreSQL",
                                  description="Operate the evidence store (audit log, consent registry, gallery).")
    commands = store.add_subparsers(dest="store_command", metavar="{migrate,copy}")
    commands.required = True
    migrate = commands.add_parser("migrate", help="bring the schema to this version",
                                  description="Create or upgrade the store's schema (idempotent).")
    migrate.add_argument("target", metavar="TARGET", help="postgresql://user:password@host:port/database, or a SQLite file")
    migrate.set_defaults(func=run_migrate)
    copy = commands.add_parser("copy", help="copy a SQLite store into PostgreSQL, then verify the chain",
                               description="Copy every audit record (chain and receipts unchanged), consent and "
                                           "template from a SQLite file into an empty PostgreSQL database, then "
                                           "verify the copied chain against the source's head.")
    copy.add_argument("source", metavar="SRC", help="the SQLite store file")
    copy.add_argument("target", metavar="DST", help="postgresql://user:password@host:port/database (empty)")
    copy.set_defaults(func=run_copy)
    return store


def _fail(message: str, err: IO[str] | None) -> int:
    print(f"error: {message}", file=err or sys.stderr)
    return EXIT_USAGE


def run_migrate(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        if is_url(args.target):
            from ._postgres import migrate, redact

            before, after = migrate(args.target)
            where = redact(args.target)
        else:
            from ._sqlite import SCHEMA_VERSION, SQLiteStore

            SQLiteStore(args.target).close()  # opening creates the schema; versions other than this one are refused
            before = after = SCHEMA_VERSION
            where = args.target
    except StoreError as exc:
        return _fail(str(exc), err)
    change = "already current" if before == after else f"was {before}"
    print(f"ok: store `{where}` schema version {after} ({change})", file=out)
    return EXIT_OK


def run_copy(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out = out or sys.stdout
    if not is_url(args.target):
        return _fail(f"the copy target must be a postgresql:// URL, not `{args.target}`", err)
    if is_url(args.source):
        return _fail("the copy source must be a SQLite store file", err)
    try:
        from ._copy import copy_store

        report = copy_store(args.source, args.target)
    except StoreError as exc:
        return _fail(str(exc), err)
    head = "empty log" if report.head is None else f"head #{report.head.seq} {report.head.hash}"
    print(f"copied {report.records} audit records, {report.consents} consents, {report.templates} templates", file=out)
    if not report.verify.ok:
        print(f"FAILED: the copied chain does not verify ({len(report.verify.problems)} problems)", file=out)
        for problem in report.verify.problems:
            print(f"  {problem}", file=out)
        return EXIT_PROBLEMS
    print(f"ok: copied chain verified, {report.verify.checked} records, {head}", file=out)
    return EXIT_OK
