"""Changing a rule from the console: its YAML text, the diagnostics, what the change flips, the save.

A rule is edited as the text of its item in its rules file (from its ``- id:`` line to the next
item), so everything else in the file -- comments, anchors, layout -- stays byte for byte; the
comments inside the rule stay because the editor shows them.

A candidate is checked exactly as ``facegate check`` checks a pack: the pack folder is copied to a
temporary folder of the same name, the edited file written there and the copy loaded.  The
problems are the loader's own (same messages, same file:line:column), their lines also given
relative to the edited text.  Then every case of the pack runs against the current and the
candidate pack, and the cases whose decision, determining rules or pass/fail change are listed.
With a store, the most recent recorded decisions are decided again under both packs (replay).

Saving is refused when the pack's files changed since the editor was opened: the form carries a
fingerprint of every file of the pack (bytes, so a comment-only edit counts), checked again under
a lock just before the file is replaced (atomically, via a temporary file and ``os.replace``).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .._cases import CASE_GLOBS, run_pack_tests
from .._pack import RULE_GLOBS
from ..errors import PolicyError, Problem
from ..policy import Policy, load_policy

SAVE_LOCK = threading.Lock()


class Conflict(Exception):
    """The pack changed on disk since the editor was opened."""


@dataclass(frozen=True)
class Span:
    path: Path  # the rules file
    start: int  # first line of the rule's item (0-based)
    end: int  # one past its last line
    text: str  # the rule's item as written


@dataclass
class CaseChange:
    id: str
    before: str
    after: str
    passed_before: bool
    passed_after: bool
    failures: list[str]


@dataclass
class Check:
    problems: list[dict[str, Any]] = field(default_factory=list)
    changes: list[CaseChange] = field(default_factory=list)
    cases: int = 0
    failing: int = 0
    replay: dict[str, Any] | None = None
    policy: Policy | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def pack_dir(policy: Policy) -> Path:
    root = policy.pack.root
    return root if root.is_dir() else root.parent


def fingerprint(root: Path) -> str:
    """sha256 over the names and bytes of every pack and case file (comments included)."""
    h = hashlib.sha256()
    for pattern in (*RULE_GLOBS, *CASE_GLOBS, "open-questions.yaml"):
        for path in sorted(root.glob(pattern)):
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def rule_path(policy: Policy, rule_id: str) -> Path:
    rule = next(r for r in policy.rules if r.id == rule_id)
    root = pack_dir(policy)
    shown = Path(rule.file)
    parts = shown.parts
    return root.joinpath(*parts[1:]) if parts and parts[0] == root.name else root / shown


def rule_span(path: Path, rule_id: str) -> Span:
    """Where rule ``rule_id``'s item is in ``path`` (found through the YAML node marks)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        raise KeyError(rule_id)
    seq = next((v for k, v in node.value if k.value == "rules"), None)
    if not isinstance(seq, yaml.SequenceNode):
        raise KeyError(rule_id)
    items = seq.value
    for i, item in enumerate(items):
        ident = next((v.value for k, v in item.value if k.value == "id"), None) if isinstance(item, yaml.MappingNode) else None
        if ident != rule_id:
            continue
        start = item.start_mark.line
        if i + 1 < len(items):
            end = items[i + 1].start_mark.line
            indent = items[i + 1].start_mark.column - 2
            while end > start + 1 and _belongs_to_next(lines[end - 1], indent):
                end -= 1
        else:
            end = item.end_mark.line + (1 if item.end_mark.column > 0 else 0)
            end = max(end, start + 1)
        return Span(path, start, end, "".join(lines[start:end]))
    raise KeyError(rule_id)


def _belongs_to_next(line: str, indent: int) -> bool:
    stripped = line.strip()
    return not stripped or (stripped.startswith("#") and len(line) - len(line.lstrip()) <= indent)


def replaced(span: Span, new_text: str) -> str:
    lines = span.path.read_text(encoding="utf-8").splitlines(keepends=True)
    if new_text and not new_text.endswith("\n"):
        new_text += "\n"
    return "".join(lines[: span.start]) + new_text + "".join(lines[span.end :])


def _problem(p: Problem, shown_file: str, offset: int) -> dict[str, Any]:
    in_rule = p.file == shown_file and p.line is not None
    return {"text": str(p), "file": p.file, "line": p.line, "column": p.column, "pointer": p.pointer,
            "message": p.message, "editor_line": (p.line - offset) if in_rule and p.line is not None else None}


def check(policy: Policy, span: Span, new_text: str, *, report: Any = None, audit: Any = None, replay_limit: int = 200) -> Check:
    """Load the pack with ``new_text`` in place of the rule; diagnostics, case changes, replay."""
    root = pack_dir(policy)
    result = Check()
    with tempfile.TemporaryDirectory(prefix="facegate-console-") as tmp:
        copy = Path(tmp) / root.name
        shutil.copytree(root, copy, ignore=shutil.ignore_patterns("*.db*", "REVIEW.*", "__pycache__"))
        target = copy / span.path.relative_to(root)
        target.write_text(replaced(span, new_text), encoding="utf-8")
        shown_file = f"{root.name}/{span.path.relative_to(root).as_posix()}"
        try:
            candidate = load_policy(copy, backend=policy.pack.backend)
        except PolicyError as exc:
            result.problems = [_problem(p, shown_file, span.start) for p in exc.problems]
            return result
        before = report if report is not None else run_pack_tests(policy)
        try:
            after = run_pack_tests(candidate, copy)
        except PolicyError as exc:
            result.problems = [_problem(p, shown_file, span.start) for p in exc.problems]
            return result
    result.policy = candidate
    old = {r.id: r for r in before.results}
    result.cases = len(after.results)
    result.failing = sum(not r.passed for r in after.results)
    for r in after.results:
        o = old.get(r.id)
        was = _summary(o.decision) if o else "—"
        now = _summary(r.decision)
        if o is None or was != now or o.passed != r.passed:
            result.changes.append(CaseChange(r.id, was, now, bool(o and o.passed), r.passed, r.failures))
    if audit is not None:
        result.replay = replay(policy, candidate, audit, replay_limit)
    return result


def _summary(decision: Any) -> str:
    rules = ", ".join(sorted(d["rule"] for d in decision.determining))
    return f"{decision.effect} ({decision.reason})" + (f": {rules}" if rules else "")


def replay(before: Policy, after: Policy, audit: Any, limit: int) -> dict[str, Any]:
    """The latest ``limit`` recorded decisions of this pack, decided again under both packs.

    The requests are as the log keeps them (identifiers pseudonymised, which no rule of a pack
    reads).  ``changed``: the decision differs (effect, reason or determining rules); those whose
    effect differs (permit <-> deny) are marked ``flips``.
    """
    changed: list[dict[str, Any]] = []
    seen = 0
    for row in audit.query(kind="decision", limit=limit, newest_first=True):
        record = row["record"]
        request = record.get("request")
        if record.get("policy", {}).get("id") != before.id or not isinstance(request, dict):
            continue
        seen += 1
        a, b = before.decide(request), after.decide(request)
        if _summary(a) != _summary(b):
            changed.append({"seq": row["seq"], "time": record.get("time"), "recorded": record.get("effect"),
                            "before": _summary(a), "after": _summary(b), "flips": a.effect != b.effect})
    return {"replayed": seen, "changed": changed, "flipped": [c for c in changed if c["flips"]]}


def restore(span: Span, old_text: str) -> None:
    """Put a rules file back as it was (when the save could not be recorded)."""
    with SAVE_LOCK:
        _write(span.path, old_text)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.console-tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fp:
        fp.write(text)
        fp.flush()
        os.fsync(fp.fileno())
    os.replace(tmp, path)


def save(policy: Policy, span: Span, new_text: str, base: str) -> tuple[str, str, str]:
    """Replace the rule's text in its file if the pack is still at ``base``.

    Returns (the file's old text, the diff, the pack's new fingerprint).
    """
    root = pack_dir(policy)
    with SAVE_LOCK:
        if fingerprint(root) != base:
            raise Conflict(f"the pack `{policy.id}` changed on disk since this editor was opened; reload and redo the edit")
        old_text = span.path.read_text(encoding="utf-8")
        new_file = replaced(span, new_text)
        _write(span.path, new_file)
        diff = "".join(difflib.unified_diff(old_text.splitlines(keepends=True), new_file.splitlines(keepends=True),
                                            f"a/{span.path.name}", f"b/{span.path.name}"))
        return old_text, diff, fingerprint(root)
