"""The pack author's command-line loop: ``init``, ``fmt``, and the authoring options of ``check``,
``test``, ``docs`` and ``decide``.

Registered into :mod:`facegate.cli` by one line; the commands it extends keep their names and
exit codes (0 fine, 1 failed cases / stale document / a deny with ``--fail-on-deny``, 2 usage or
load errors).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import PolicyError, Problem

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    """Add ``init`` and ``fmt``; add authoring options to ``check``, ``test``, ``docs``, ``decide``."""
    choices = sub.choices
    choices["check"].set_defaults(func=cmd_check)
    p = choices["decide"]
    p.add_argument("--fail-on-deny", action="store_true", help="exit 1 when the decision is deny (for shell pipelines)")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="with --requests: decide on N processes (this one and N-1 forked workers; default 1)")
    p.set_defaults(func=cmd_decide)
    p = choices["test"]
    p.add_argument("-k", dest="pattern", metavar="PATTERN",
                   help="run only cases whose id matches (a substring, or a glob such as 'minor-*'); coverage is not judged")
    p.add_argument("-q", "--quiet", action="store_true", help="print failures and the summary only")
    p.set_defaults(func=cmd_test)
    p = choices["docs"]
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if REVIEW.md/.html are stale")
    p.set_defaults(func=cmd_docs)
    p = sub.add_parser("init", help="scaffold a new pack (format v2): pack.yaml with facts, one rule, one case")
    p.add_argument("dir")
    p.add_argument("--id", help="pack id (default: the folder name)")
    p.add_argument("--jurisdiction", default="US-IL", help="ISO 3166 code (default: US-IL)")
    p.set_defaults(func=cmd_init)
    p = sub.add_parser("fmt", help="rewrite pack and case files in the canonical layout, keeping comments")
    p.add_argument("paths", nargs="+", help="pack folders or YAML files")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is not formatted")
    p.set_defaults(func=cmd_fmt)


def _problems(problems: list[Problem] | tuple[Problem, ...]) -> int:
    for problem in problems:
        print(str(problem), file=sys.stderr)
    n = len(problems)
    print(f"facegate: {n} problem{'s' if n != 1 else ''} found", file=sys.stderr)
    return EXIT_USAGE


# -- check -----------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Load every pack and check its case files; print every problem, then lint warnings."""
    from ._cases import check_cases
    from .cli import _Style
    from .policy import load_policy

    status = EXIT_OK
    style = _Style(sys.stdout)
    for pack in args.packs:
        try:
            policy = load_policy(pack)
            problems = check_cases(policy)
        except PolicyError as exc:
            status = _problems(exc.problems)
            continue
        if problems:
            status = _problems(problems)
            continue
        for lint in policy.pack.lints:
            print(f"warning: {lint}", file=sys.stderr)
        enforce = sum(1 for p in policy.pack.provisions if p.enforceable)
        print(f"{style.good('ok')} {pack}: {policy.id} {policy.version}, {len(policy.rules)} rules, "
              f"{enforce}/{len(policy.pack.provisions)} provisions enforceable, revision {policy.revision[:19]}")
    return status


# -- decide ----------------------------------------------------------------------------------------


def cmd_decide(args: argparse.Namespace) -> int:
    from .cli import _err, _read_request, _Style, render_decision
    from .policy import load_policy

    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        return _problems(exc.problems)
    if args.requests is not None:
        if args.explain or args.json or getattr(args, "remedies", False):
            _err("--requests answers each request as its decision's JSON: --json, --explain and --remedies are for --request")
            return EXIT_USAGE
        return _decide_lines(policy, args)
    if args.processes != 1:
        _err("--processes is for --requests (a file of requests)")
        return EXIT_USAGE
    try:
        request = _read_request(args.request)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        _err(f"cannot read request `{args.request}`: {exc}")
        return EXIT_USAGE
    decision = policy.decide(request, explain=args.explain)
    if args.json:
        print(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_decision(decision, _Style(sys.stdout), explain=args.explain))
    return EXIT_FAILED if args.fail_on_deny and not decision.permitted else EXIT_OK


def _decide_lines(policy: Any, args: argparse.Namespace) -> int:
    """``decide --requests FILE``: each non-blank line a request, each decision a line of JSON (in
    order; a line that is not JSON is an invalid request saying why, as the service answers)."""
    from . import _pool_codec
    from .cli import _err

    try:
        if args.requests == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.requests, "rb") as f:
                data = f.read()
    except OSError as exc:
        _err(f"cannot read requests `{args.requests}`: {exc}")
        return EXIT_USAGE
    if args.processes < 1:
        _err("--processes must be at least 1")
        return EXIT_USAGE
    lines = [line for line in data.split(b"\n") if line.strip()]  # at "\n" only: a lone "\r" is JSON whitespace
    if args.processes > 1 and len(lines) > 1:
        from ._pool import DecisionPool

        with DecisionPool(policy, processes=args.processes - 1) as pool:
            out = pool.decide_json(lines)
    else:
        out = _pool_codec.decide_documents(policy._procedure, lines)
    sys.stdout.buffer.write(b"".join(d + b"\n" for d in out))
    sys.stdout.flush()
    denied = args.fail_on_deny and any(json.loads(d)["decision"] != "permit" for d in out)
    return EXIT_FAILED if denied else EXIT_OK


# -- test ------------------------------------------------------------------------------------------


def _matches(case_id: str, pattern: str) -> bool:
    return pattern in case_id or fnmatch.fnmatchcase(case_id, pattern)


def cmd_test(args: argparse.Namespace) -> int:
    from ._cases import coverage_gap, run_pack_tests
    from .cli import _Style
    from .policy import load_policy

    style = _Style(sys.stdout)
    status = EXIT_OK
    reports = []
    for pack in args.packs:
        try:
            policy = load_policy(pack)
            report = run_pack_tests(policy)
        except PolicyError as exc:
            status = _problems(exc.problems)
            continue
        results = report.results
        if args.pattern:
            results = [r for r in results if _matches(r.id, args.pattern)]
            failed = not results or not all(r.passed for r in results)
            if not results:
                print(f"{policy.id}: no case matches `{args.pattern}`", file=sys.stderr)
        else:
            failed = not report.passed
        reports.append(report)
        if failed:
            status = max(status, EXIT_FAILED)
        if args.junit:
            name = args.junit if len(args.packs) == 1 else f"{args.junit}.{policy.id}.xml"
            Path(name).write_text(report.junit_xml(), encoding="utf-8")
        if args.json:
            continue
        if not args.quiet:
            print(style.bold(f"{policy.id} {policy.version}"))
        for r in results:
            if args.quiet and r.passed:
                continue
            mark = style.good("pass") if r.passed else style.bad("FAIL")
            print(f"  {mark} {r.id}" + ("" if r.passed else f"  ({r.file}:{r.line})"))
            for f in r.failures:
                print(f"       {f}")
        passed = sum(r.passed for r in results)
        if args.pattern:
            print(f"{policy.id}: {passed} passed, {len(results) - passed} failed (`-k {args.pattern}`: coverage not judged)")
            continue
        if not args.quiet:
            print(style.bold("  provision coverage"))
        for c in report.coverage:
            if args.quiet and c.covered:
                continue
            if not c.enforceable:
                print(f"    {c.provision:<10} not enforceable")
                continue
            mark = style.good("covered") if c.covered else style.bad("MISSING")
            print(f"    {c.provision:<10} {mark}  decisive: {len(c.decisive_cases)}  boundary/exception: {len(c.boundary_cases)}")
            if not c.covered:
                print(f"               {coverage_gap(c)}")
        head = f"{policy.id}: " if args.quiet else "  "
        print(f"{head}{passed} passed, {len(results) - passed} failed; provision coverage {report.coverage_percent:.0f} %")
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
    return status


# -- docs ------------------------------------------------------------------------------------------


def cmd_docs(args: argparse.Namespace) -> int:
    """Write (or ``--check``) the review document; exit 1 when cases fail or coverage is short
    (the document then opens with a banner saying so) or, with ``--check``, when it is stale."""
    from ._cases import run_pack_tests
    from .policy import load_policy
    from .review import render, write_review

    status = EXIT_OK
    for pack in args.packs:
        try:
            policy = load_policy(pack)
            report = run_pack_tests(policy)
        except PolicyError as exc:
            return _problems(exc.problems)
        root = policy.pack.root if policy.pack.root.is_dir() else policy.pack.root.parent
        target = Path(args.out) if args.out else root
        if args.check:
            markdown, page = render(policy)
            stale = [name for name, text in (("REVIEW.md", markdown), ("REVIEW.html", page))
                     if not (target / name).is_file() or (target / name).read_text(encoding="utf-8") != text]
            if stale:
                print(f"{pack}: stale {', '.join(stale)}; run `facegate docs {pack}`", file=sys.stderr)
                status = EXIT_FAILED
            else:
                print(f"{pack}: REVIEW.md and REVIEW.html are current")
        else:
            for path in write_review(policy, target):
                print(f"wrote {path}")
        if not report.passed:
            failing = sum(not r.passed for r in report.results)
            print(f"{pack}: {failing} failing case{'s' if failing != 1 else ''}, provision coverage "
                  f"{report.coverage_percent:.0f} % — the document says so at the top", file=sys.stderr)
            status = EXIT_FAILED
    return status


# -- init ------------------------------------------------------------------------------------------


def _schema_uri(name: str) -> str:
    """The installed schema's location, so the modeline works outside facegate's repository."""
    path = Path(str(resources.files("facegate").joinpath("schemas", name)))
    return path.resolve().as_uri()


_PACK = """\
# yaml-language-server: $schema={schema}
#
# A new facegate pack (format v2).  Reference: docs/policy-language.md in facegate's repository.
# Check it with `facegate check {dir}`, run its cases with `facegate test {dir}`, and write the
# review document with `facegate docs {dir}`.
format: facegate/policy/v2
pack:
  id: {id}
  title: "{id} — replace with the instrument's title"
  jurisdiction: {jurisdiction}
  instrument:
    title: {{en: "replace with the instrument's official title"}}
    status: draft
  version: 0.1.0
  valid_from: {today}
  review_notice: {{en: "DRAFT — not reviewed by a lawyer."}}
languages:
  declared: [en]
  required: [en]
evidence_grades:
  A: {{en: "verbatim from the official text"}}
  X: {{en: "text not found"}}
facts:
  release:
    type: object
    description: {{en: "the subject's written release"}}
    properties:
      written:
        type: boolean
        description: {{en: "a written release signed by the subject"}}
"""

_RULES = """\
# yaml-language-server: $schema={schema}
format: facegate/policy/v2
rules:
  - id: p1-verify-with-written-release
    provision: P-1
    article: {{number: "1", verified: false}}
    text: {{en: "replace with the provision's text", grade: X}}
    effect: permit
    when:
      - request.operation == "verify"
      - has(request.release) && has(request.release.written) && request.release.written
    message: {{en: "verification with a written release"}}
    review: {{status: draft}}
"""

_CASES = """\
# yaml-language-server: $schema={schema}
format: facegate/cases/v1
cases:
  - id: verify-with-written-release
    exercises: [P-1]
    request: {{operation: verify, purpose: access_control, release: {{written: true}}}}
    expect: {{decision: permit, determining: [p1-verify-with-written-release], errors: []}}
  - id: verify-without-release
    exercises: [P-1]
    request: {{operation: verify, purpose: access_control}}
    expect: {{decision: deny, determining: [], errors: []}}
"""


def cmd_init(args: argparse.Namespace) -> int:
    import datetime as _dt
    import re

    from .cli import _err

    target = Path(args.dir)
    pack_id = args.id or re.sub(r"[^a-z0-9._-]+", "-", target.resolve().name.lower()).strip("-._") or "my-pack"
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", pack_id):
        _err(f"`{pack_id}` cannot be a pack id (lowercase letters, digits, `.`, `_`, `-`); give one with --id")
        return EXIT_USAGE
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        _err(f"`{target}` exists and is not an empty folder; nothing written")
        return EXIT_USAGE
    policy_schema, cases_schema = _schema_uri("policy.v2.json"), _schema_uri("cases.v1.json")
    values = {"id": pack_id, "dir": str(target), "jurisdiction": args.jurisdiction, "today": _dt.date.today().isoformat()}
    files = {
        "pack.yaml": _PACK.format(schema=policy_schema, **values),
        "rules/rules.yaml": _RULES.format(schema=policy_schema),
        "cases/cases.yaml": _CASES.format(schema=cases_schema),
    }
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return EXIT_OK


# -- fmt -------------------------------------------------------------------------------------------


def cmd_fmt(args: argparse.Namespace) -> int:
    from ._format import FormatError, format_text

    files: list[Path] = []
    for given in args.paths:
        path = Path(given)
        if path.is_dir():
            files += [p for g in ("pack.yaml", "pack.yml", "rules/*.yaml", "rules/*.yml", "cases/*.yaml", "cases/*.yml") for p in sorted(path.glob(g))]
        else:
            files.append(path)
    status = EXIT_OK
    for path in files:
        try:
            before = path.read_text(encoding="utf-8")
            after = format_text(before, str(path))
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except FormatError as exc:
            return _problems(exc.problems)
        if after == before:
            continue
        if args.check:
            print(f"would reformat {path}")
            status = EXIT_FAILED
        else:
            path.write_text(after, encoding="utf-8", newline="\n")
            print(f"reformatted {path}")
    return status
