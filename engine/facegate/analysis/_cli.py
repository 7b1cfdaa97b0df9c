"""``facegate analyze | prove | diff | replay``: the analysis commands (wired in by ``cli.register``).

Exit codes follow the core's: 0 done (``prove``: proved), 1 ``prove`` found a counterexample or
could not prove, 2 usage, load or store errors (and a missing z3-solver).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_NO_Z3 = "z3-solver is not installed: pip install 'facegate[analysis]'"


def _load(path: str) -> Any:
    from ..policy import load_policy

    return load_policy(path)


def _z3() -> bool:
    try:
        import z3  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        print(f"facegate: error: {_NO_Z3}", file=sys.stderr)
        return False
    return True


def _policy_error(exc: Any) -> int:
    for problem in exc.problems:
        print(str(problem), file=sys.stderr)
    return EXIT_USAGE


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..errors import PolicyError

    if not _z3():
        return EXIT_USAGE
    from ._analyze import analyze, render

    results = []
    for pack in args.packs:
        try:
            policy = _load(pack)
        except PolicyError as exc:
            return _policy_error(exc)
        a = analyze(policy, day=args.day)
        results.append(a)
        if not args.json:
            print(render(a))
    if args.json:
        print(json.dumps([a.to_dict() for a in results], ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_prove(args: argparse.Namespace) -> int:
    from ..errors import PolicyError

    if not _z3():
        return EXIT_USAGE
    from ._prove import prove

    try:
        policy = _load(args.pack)
    except PolicyError as exc:
        return _policy_error(exc)
    result = prove(policy, args.property, day=args.day)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"{result.status.upper()}: {result.detail}")
        if result.counterexample is not None and result.decision is not None:
            print("  counterexample request (reproduce with: facegate decide --policy PACK --request FILE):")
            print("  " + json.dumps(result.counterexample, ensure_ascii=False))
            print(f"  decision: {result.decision['effect']} ({result.decision['reason']})")
        for rule, why in result.not_analysable:
            print(f"  not analysable: {rule}: {why}")
    if args.counterexample and result.counterexample is not None:
        with open(args.counterexample, "w", encoding="utf-8") as fp:
            json.dump(result.counterexample, fp, ensure_ascii=False, indent=2)
    return EXIT_OK if result.proved else EXIT_FAILED


def cmd_diff(args: argparse.Namespace) -> int:
    from ..errors import PolicyError
    from ._diff import decision_change, diff, render

    try:
        old, new = _load(args.old), _load(args.new)
    except PolicyError as exc:
        return _policy_error(exc)
    d = diff(old, new)
    change = None
    if not args.no_decisions:
        try:
            import z3  # noqa: F401
        except ImportError:
            change = {"status": "unknown", "detail": _NO_Z3}
        else:
            change = decision_change(old, new)
    if args.json:
        print(json.dumps({**d, "decisions": change}, ensure_ascii=False, indent=2, default=str))
    else:
        print(render(d, change))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from ..errors import PolicyError
    from ..store._errors import StoreError
    from ._replay import render, replay

    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        return _policy_error(exc)
    since = args.since
    if since and re.fullmatch(r"\d{4}-\d{2}-\d{2}", since):
        since += "T00:00:00+00:00"
    try:
        report = replay(args.db, policy, since=since, at_recorded=args.at_recorded)
    except StoreError as exc:
        print(f"facegate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if args.json else render(report))
    return EXIT_OK


# -- options added to ``decide`` and ``test`` (wrapping whichever handler they have)


def _decide_with_remedies(args: argparse.Namespace, handler: Any) -> int:
    """``decide --remedies``: the decision as ``decide`` prints it, then its remedies."""
    if not args.remedies or getattr(args, "requests", None) is not None:  # decide refuses --remedies with --requests
        return int(handler(args))
    from ..errors import PolicyError
    from ..explain import find_remedies
    from ..explain._render import render_remedies

    try:
        policy = _load(args.policy)
        text = sys.stdin.read() if args.request == "-" else Path(args.request).read_text(encoding="utf-8")
        request = json.loads(text)
    except PolicyError as exc:
        return _policy_error(exc)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        print(f"facegate: error: cannot read request `{args.request}`: {exc}", file=sys.stderr)
        return EXIT_USAGE
    decision = policy.decide(request, explain=args.explain)
    report = find_remedies(policy, request)
    if args.json:
        out = decision.to_dict()
        out["remedies"] = {"found": list(report.remedies), "exhausted": report.exhausted, "proved_none": report.proved_none}
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        from ..cli import _Style, render_decision

        print(render_decision(decision, _Style(sys.stdout), explain=args.explain))
        print(render_remedies(decision, report))
    return EXIT_FAILED if getattr(args, "fail_on_deny", False) and not decision.permitted else EXIT_OK


def _test_with_properties(args: argparse.Namespace, handler: Any) -> int:
    """``test``: the cases as ``test`` runs them, then each pack's ``properties.yaml`` (not with ``-k``)."""
    import contextlib
    import io

    from ..cli import _Style
    from ..errors import PolicyError
    from ._properties import print_properties, run_properties

    if getattr(args, "pattern", None):
        return int(handler(args))
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured) if args.json else contextlib.nullcontext():
        status = int(handler(args))
    style = _Style(sys.stdout)
    found: dict[str, list[Any]] = {}
    for pack in args.packs:
        try:
            policy = _load(pack)
            results = run_properties(policy)
        except PolicyError as exc:
            status = max(status, _policy_error(exc))
            continue
        found[policy.id] = results
        if not all(r.passed for r in results):
            status = max(status, EXIT_FAILED)
        if not args.json:
            shown = [r for r in results if not r.passed] if getattr(args, "quiet", False) else results
            if shown:
                print(style.bold(f"{policy.id}"))
            print_properties(shown, style)
    if args.json:
        text = captured.getvalue()
        try:
            reports = json.loads(text)
        except json.JSONDecodeError:
            print(text, end="")
            return status
        for report in reports:
            pid = report.get("policy", {}).get("id") if isinstance(report.get("policy"), dict) else report.get("policy")
            report["properties"] = [r.to_dict() for r in found.get(pid, [])]
            report["passed"] = bool(report.get("passed")) and all(r["passed"] for r in report["properties"])
        print(json.dumps(reports, ensure_ascii=False, indent=2))
    return status


def _wrap(parser: argparse.ArgumentParser, wrapper: Any) -> None:
    handler = parser.get_default("func")
    parser.set_defaults(func=lambda args: wrapper(args, handler))


def register(sub: Any) -> None:
    decide = sub.choices["decide"]
    decide.add_argument("--remedies", action="store_true",
                        help="for a deny: the smallest changes to actionable facts that make it a permit, or 'no lawful variant'")
    _wrap(decide, _decide_with_remedies)
    _wrap(sub.choices["test"], _test_with_properties)
    p = sub.add_parser("analyze", help="prove facts about packs for every valid request (z3): dead, shadowed, overlapping rules")
    p.add_argument("packs", nargs="+")
    p.add_argument("--day", help="analyse as of this day (YYYY-MM-DD; default today): validity windows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_analyze)
    p = sub.add_parser("prove", help="prove a CEL property over request and decision for every valid request, or show a counterexample")
    p.add_argument("pack")
    p.add_argument("property", help='e.g. \'!(decision.permitted && request.operation == "analyze") || has(request.consent)\'')
    p.add_argument("--day", help="as of this day (YYYY-MM-DD; default today)")
    p.add_argument("--counterexample", metavar="FILE", help="write the counterexample request here (JSON)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_prove)
    p = sub.add_parser("diff", help="provisions, rules, parameters and variables added, removed and changed between two packs")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--no-decisions", action="store_true", help="skip the solver's search for a request decided differently")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("replay", help="re-decide the recorded requests of a decision log under a new pack; table what would change")
    p.add_argument("--db", required=True, help="the store's SQLite file")
    p.add_argument("--policy", required=True, help="the new pack")
    p.add_argument("--since", metavar="DATE", help="records at or after this day or ISO-8601 time")
    p.add_argument("--at-recorded", action="store_true", help="decide as of each record's own time (default: now)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)
