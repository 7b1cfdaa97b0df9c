"""The ``facegate`` command line.  Exit 0 for any decision, 1 for failed tests, 2 for usage or load errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import FacegateError
from .policy import Decision

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Style:
    def __init__(self, stream: TextIO) -> None:
        self.on = stream.isatty() and os.environ.get("NO_COLOR") is None

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.on else text

    def good(self, t: str) -> str:
        return self(t, "32;1")

    def bad(self, t: str) -> str:
        return self(t, "31;1")

    def dim(self, t: str) -> str:
        return self(t, "2")

    def bold(self, t: str) -> str:
        return self(t, "1")


def _err(message: str) -> None:
    print(f"facegate: error: {message}", file=sys.stderr)


def _read_request(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return json.loads(text)


def render_decision(d: Decision, style: _Style, *, explain: bool = False) -> str:
    lines = []
    head = style.good("PERMIT") if d.permitted else style.bad("DENY")
    lines.append(f"{head}  ({d.reason})  {style.dim('decision ' + d.decision_id)}")
    for v in d.violations:
        lines.append(f"  invalid request at `{v['pointer'] or '/'}`: {v['message']}")
    for det in d.determining:
        art = "article number unknown" if det["article"] is None else f"Art. {det['article']}" + ("" if det["article_verified"] else " (numbering unverified)")
        msg = det["message"]
        lines.append(f"  {det['provision']} [{art}] {det['rule']}: " + " / ".join(v for k, v in msg.items() if k != "detail"))
        if "detail" in msg:
            lines.append(f"      {msg['detail']}")
    for e in d.errors:
        lines.append(f"  {style.bad('error')} in {e['rule']} ({e['provision']}): {e['error']}")
    for w in d.warnings:
        lines.append(f"  warning {w['provision']} {w['rule']}: {w['message'].get('en') or next(iter(w['message'].values()))}")
    for u in d.unmet:
        lines.append(f"  not permitted by {_describe_unmet(u)}")
    for o in d.obligations:
        extra = f" ({o['days']} days)" if "days" in o else ""
        srcs = ", ".join(s["provision"] for s in o["sources"])
        lines.append(f"  obligation {o['type']}{extra}  [{srcs}]")
    if explain and d.explanation:
        for rid, info in d.explanation["rules"].items():
            lines.append(f"  {style.dim(rid)} {info['effect']}/{info['mode']}: {info['outcome']}")
            for w in info["when"]:
                lines.append(f"      when   {w['value']!s:<5} {w['condition']}")
            for u in info["unless"]:
                lines.append(f"      unless {u['value']!s:<5} {u['condition']}")
        for b in d.explanation.get("blocked_permits", []):
            lines.append(f"  permit {b['rule']} did not apply: unmet {b['unmet']}" + (f", excepted by {b['excepted_by']}" if b["excepted_by"] else ""))
    lines.append(style.dim(f"  policy {d.policy['id']} {d.policy['version']} {d.policy['revision'][:19]}"))
    return "\n".join(lines)


def _describe_unmet(entry: dict[str, Any]) -> str:
    from .explain import describe

    return describe(entry)


def cmd_plugins(args: argparse.Namespace) -> int:
    from ._config import read_config
    from ._plugins import load_registry
    from .gate._worker import probe

    allow: list[str] = list(args.allow or [])
    isolation = "required"
    if args.config:
        config, _ = read_config(args.config)
        allow += config.get("plugins", {}).get("allow", [])
        isolation = config["recognizer"].get("isolation", "required")
    registry = load_registry(allow)
    confinement = probe(isolation)  # what a recognizer gets on this machine, checked in a real worker
    rows: list[dict[str, Any]] = []
    for p in registry.plugins:
        recognizers = []
        for rid in p.recognizers:
            info = registry.recognizers[rid]
            caps = sorted(info.capabilities.operations)
            if info.capabilities.attributes:
                caps.append("attributes=" + ",".join(sorted(info.capabilities.attributes)))
            recognizers.append({"id": rid, "version": info.version, "capabilities": caps, "metric": info.metric, "threshold": info.threshold,
                                "isolation": isolation, "confinement": confinement.to_dict()})
        rows.append({"name": p.name, "distribution": p.distribution, "version": p.version, "allowed": p.allowed,
                     "loaded": p.loaded, "recognizers": recognizers, "cel_functions": p.functions, "error": p.error})
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    style = _Style(sys.stdout)
    verdict = "recognizers run" if isolation == "none" or confinement.confined else "recognizers are REFUSED:"
    print(f"isolation {isolation}: {verdict} {confinement.describe()}")
    for r in rows:
        state = style.good("loaded") if r["loaded"] else ("allowed" if r["allowed"] else style.dim("installed, not allowed"))
        print(f"{r['name']:<20} {r['distribution']} {r['version']}  {state}")
        for rec in r["recognizers"]:
            print(f"    recognizer {rec['id']} {rec['version']}: {' '.join(rec['capabilities'])} ({rec['metric']} threshold {rec['threshold']})")
        if r["cel_functions"]:
            print(f"    cel functions: {', '.join(r['cel_functions'])}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    if args.world:
        from ._demo_world import run_world_demo

        return run_world_demo(args.policies, recognizer=args.recognizer, db=args.db)
    from ._demo import run_demo

    return run_demo(args.policy, recognizer=args.recognizer, db=args.db, images=args.image, enroll=args.enroll, verify=args.verify)


def build_parser(core_only: bool = False) -> argparse.ArgumentParser:
    """Every subcommand; ``core_only``: without the extensions that only add their own subcommands,
    so that ``check``, ``decide`` and ``test`` never import the store, the service, the gate or numpy."""
    parser = argparse.ArgumentParser(prog="facegate", description="regulation-as-code for face recognition")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate and compile policy packs; print every problem")
    p.add_argument("packs", nargs="+")
    # handler: _cli_authoring.cmd_check (registered below, always)
    p = sub.add_parser("decide", help="decide one request (or a JSON Lines file of them) against a pack")
    p.add_argument("--policy", required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--request", help="a JSON file, or - for standard input")
    which.add_argument("--requests", metavar="JSONL", help="a JSON Lines file of requests (or - for standard input): "
                       "one decision per line, as JSON, in order, to standard output")
    p.add_argument("--json", action="store_true")
    p.add_argument("--explain", action="store_true")
    # handler: _cli_authoring.cmd_decide (registered below, always)
    p = sub.add_parser("test", help="run a pack's cases and report provision coverage")
    p.add_argument("packs", nargs="+")
    p.add_argument("--json", action="store_true")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML for CI")
    # handler: _cli_authoring.cmd_test (registered below, always)
    p = sub.add_parser("plugins", help="list installed, allowed and loaded plugins with versions and capabilities")
    p.add_argument("--config", help="operator configuration whose allow-list to apply")
    p.add_argument("--allow", action="append", metavar="NAME", help="allow a plugin by entry-point name (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("demo", help="the main job: gate realistic requests on real photos through a pack")
    p.add_argument("--policy", help="policy pack folder (default: the CAC-2023 pack shipped with facegate)")
    p.add_argument("--recognizer", default="onnx", help="entry-point name of the recognizer plugin (default: onnx)")
    p.add_argument("--db", help="keep the audit log, consent registry and gallery in this SQLite file")
    p.add_argument("--image", action="append", help="also run detection on this photo (repeatable)")
    p.add_argument("--enroll", metavar="PHOTO", help="your own pair: enrol the face in this photo ...")
    p.add_argument("--verify", metavar="PHOTO", help="... and verify the face in this one against it")
    p.add_argument("--world", action="store_true", help="the multi-jurisdiction scenario: the CN 2025, EU and Illinois packs composed")
    p.add_argument("--policies", help="with --world: the folder holding the packs (default: the packs shipped with facegate)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("docs", help="generate the review document (Markdown and HTML) for legal sign-off")
    p.add_argument("packs", nargs="+")
    p.add_argument("--out", help="output folder (default: the pack's own folder)")
    # handler: _cli_authoring.cmd_docs (registered below, always)
    if not core_only:  # the store (and numpy, through it) only for the commands that use it
        __import__("facegate.store._store_cli", fromlist=["register"]).register(sub)  # facegate store migrate|copy
    for register in _EXTENSIONS:
        if not (core_only and register in _OWN_COMMANDS_ONLY):
            register(sub)
    return parser


def _audit_commands(sub: Any) -> None:
    from .store._cli import add_audit_commands

    add_audit_commands(sub)


def _analysis_commands(sub: Any) -> None:
    from .analysis._cli import register

    register(sub)


def _authoring_commands(sub: Any) -> None:
    from ._cli_authoring import register

    register(sub)


def _serve_commands(sub: Any) -> None:
    from ._cli_serve import register

    register(sub)


def _console_commands(sub: Any) -> None:
    from .console._cli import register

    register(sub)


_EXTENSIONS: list[Callable[[Any], None]] = [_audit_commands, _authoring_commands, _serve_commands, _console_commands, _analysis_commands]
#: Extensions that only add subcommands of their own (and import the store, the service or the
#: console to do it): left out when the command line names ``check``, ``decide`` or ``test``.
_OWN_COMMANDS_ONLY: tuple[Callable[[Any], None], ...] = (_audit_commands, _serve_commands, _console_commands)


#: Subcommands that only load packs and decide: their command line is parsed without the others.
_LIGHT = ("check", "decide", "test")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(core_only=bool(argv) and argv[0] in _LIGHT)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    try:
        result: int = args.func(args)
        return result
    except FacegateError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
