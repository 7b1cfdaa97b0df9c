"""Runs Google's CEL conformance files (the "simple" suite) against facegate.cel.

Every test that needs no protobuf message type runs three ways: the native compiler,
cel-python 0.5.0's interpreter as released, and that interpreter with facegate's
documented spec corrections.  ``python tests/cel/cel_conformance.py`` rewrites
``CONFORMANCE.md``; ``test_cel_conformance.py`` fails if it is stale or if any in-scope
test fails natively.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = ROOT.parent / "shared" / "cel-spec"
if not SPEC.exists():  # the suite lives next to the repository, as in the issue
    SPEC = Path("/work/shared/cel-spec")
DATA = SPEC / "testdata"
REPORT = HERE / "CONFORMANCE.md"

for extra in (ROOT / "engine", HERE):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import cel_textproto
from facegate import cel
from facegate.cel import _parse
from facegate.cel._interp import SPEC_CORRECTIONS, InterpreterRunner
from facegate.cel.testing import same_value

_WELL_KNOWN = {"google.protobuf.Timestamp", "google.protobuf.Duration"}
_ANY_URL = re.compile(r"\[type\.googleapis\.com/([\w.]+)\]")


class Skip(Exception):
    """A test outside facegate's scope, with the reason."""


@dataclass
class Case:
    file: str
    section: str
    name: str
    expr: str
    check: bool
    bindings: dict[str, Any]
    expect_error: bool
    expected: Any
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}/{self.section}/{self.name}"


@dataclass
class Outcome:
    case: Case
    native: str  # "pass" | "fail" | "skip"
    native_detail: str = ""
    interpreter: str = ""  # "pass" | "fail" ("" when skipped)
    interpreter_detail: str = ""
    corrected: str = ""


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _one(message: dict[str, list[Any]], name: str, default: Any = None) -> Any:
    values = message.get(name)
    return values[0] if values else default


def convert_value(value: dict[str, list[Any]]) -> Any:
    """A ``cel.expr.Value`` message as a native facegate.cel value."""
    if "null_value" in value:
        return None
    if "bool_value" in value:
        return _one(value, "bool_value") in ("true", True, 1)
    if "int64_value" in value:
        return int(_one(value, "int64_value"))
    if "uint64_value" in value:
        return cel.UInt(int(_one(value, "uint64_value")))
    if "double_value" in value:
        return float(_one(value, "double_value"))
    if "string_value" in value:
        return _text(_one(value, "string_value"))
    if "bytes_value" in value:
        raw = _one(value, "bytes_value")
        return raw if isinstance(raw, bytes) else str(raw).encode()
    if "list_value" in value:
        return [convert_value(v) for v in _one(value, "list_value").get("values", [])]
    if "map_value" in value:
        out = {}
        for entry in _one(value, "map_value").get("entries", []):
            out[convert_value(_one(entry, "key"))] = convert_value(_one(entry, "value"))
        return out
    if "type_value" in value:
        return cel.CelType(_text(_one(value, "type_value")))
    if "object_value" in value:
        any_value = _one(value, "object_value")
        ((url, payload),) = any_value.items()
        m = _ANY_URL.fullmatch(url)
        kind = m.group(1) if m else url
        if kind in _WELL_KNOWN:
            seconds = int(_one(payload[0], "seconds", 0))
            nanos = int(_one(payload[0], "nanos", 0))
            total = seconds * 1_000_000_000 + nanos
            return cel.Duration(total) if kind.endswith("Duration") else cel.Timestamp(total)
        raise Skip(f"protobuf message value `{kind}`")
    if "enum_value" in value:
        raise Skip("protobuf enum value")
    raise Skip(f"value kind `{', '.join(value)}`")


def _scope(test: dict[str, list[Any]], expr: str) -> str | None:
    if "container" in test:
        return "needs a protobuf container (package-qualified message names)"
    if re.search(r"\bTestAllTypes\b|\bNestedTestAllTypes\b|\bGlobalEnum\b|\bTestAllTypes\.", expr):
        return "constructs or reads protobuf test messages"
    for name in re.findall(r"google\.protobuf\.\w+", expr):
        if name not in _WELL_KNOWN:
            return f"uses protobuf message type `{name}`"
    for flag, reason in (
        ("disable_macros", "macro expansion disabled"),
        ("check_only", "type-check only (no evaluation)"),
        ("typed_result", "expects a checker-deduced type"),
        ("unknown", "expects unknown-set results"),
        ("any_unknowns", "expects unknown-set results"),
    ):
        if flag in test:
            return reason
    return None


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(DATA.glob("*.textproto")):
        document = cel_textproto.parse(path.read_text(encoding="utf-8"))
        for section in document.get("section", []):
            section_name = _text(_one(section, "name"))
            for test in section.get("test", []):
                expr = _text(_one(test, "expr"))
                case = Case(
                    file=path.stem,
                    section=section_name,
                    name=_text(_one(test, "name")),
                    expr=expr,
                    check=_one(test, "disable_check", "false") not in ("true", True),
                    bindings={},
                    expect_error="eval_error" in test or "any_eval_errors" in test,
                    expected=None,
                )
                case.skip = _scope(test, expr)
                if case.skip is None:
                    try:
                        for binding in test.get("bindings", []):
                            expr_value = _one(binding, "value")
                            case.bindings[_text(_one(binding, "key"))] = convert_value(
                                _one(expr_value, "value")
                            )
                        if not case.expect_error:
                            value = _one(test, "value")
                            case.expected = convert_value(value) if value is not None else True
                    except Skip as exc:
                        case.skip = str(exc)
                cases.append(case)
    return cases


def run_native(case: Case) -> tuple[bool, str]:
    try:
        program = cel.compile(case.expr, check=case.check)
    except cel.CELCompileError as exc:
        return False, f"compile error: {exc.message}"
    result = program.run(case.bindings)
    if case.expect_error:
        return type(result) is cel.CELError, f"got `{result!r}`, expected an error"
    return same_value(result, case.expected), f"got `{result!r}`, expected `{case.expected!r}`"


def run_interpreter(case: Case, corrections: frozenset[str]) -> tuple[bool, str]:
    import celpy

    try:
        celpy.Environment().compile(case.expr)  # can cel-python's own parser read it?
    except Exception as exc:  # noqa: BLE001 - any parser failure means it cannot
        return False, f"cel-python cannot parse it ({type(exc).__name__})"
    runner = InterpreterRunner(_parse.parse_tree(case.expr), {}, corrections)
    result = runner.run(case.bindings)
    if case.expect_error:
        return type(result) is cel.CELError, f"got `{result!r}`, expected an error"
    return same_value(result, case.expected), f"got `{result!r}`, expected `{case.expected!r}`"


def run_all(interpreter: bool = True) -> list[Outcome]:
    outcomes = []
    every = frozenset(SPEC_CORRECTIONS)
    for case in load_cases():
        if case.skip is not None:
            outcomes.append(Outcome(case, "skip", case.skip))
            continue
        ok, detail = run_native(case)
        outcome = Outcome(case, "pass" if ok else "fail", "" if ok else detail)
        if interpreter:
            raw_ok, raw_detail = run_interpreter(case, frozenset())
            outcome.interpreter = "pass" if raw_ok else "fail"
            outcome.interpreter_detail = "" if raw_ok else raw_detail
            fixed_ok, _ = run_interpreter(case, every)
            outcome.corrected = "pass" if fixed_ok else "fail"
        outcomes.append(outcome)
    return outcomes


def render(outcomes: list[Outcome]) -> str:
    files = sorted({o.case.file for o in outcomes})
    lines = [
        "# CEL conformance",
        "",
        "Generated by `python tests/cel/cel_conformance.py` from Google's conformance files",
        f"(`cel-spec` {_source_commit()}, the *simple* suite subset in `shared/cel-spec/testdata`);",
        "`tests/cel/test_cel_conformance.py` fails when this file is stale.  A test is in scope",
        "unless it needs protobuf message types; `disable_check` tests compile with `check=False`.",
        "",
        "Columns: **native** is facegate's compiler; **cel-python** is cel-python 0.5.0's interpreter",
        "as released; **corrected** is that interpreter with facegate's documented spec corrections",
        "(`facegate.cel._interp.SPEC_CORRECTIONS`), the oracle of the differential test.",
        "",
        (
            "| file | tests | skipped | native pass | native fail | cel-python pass | cel-python fail"
            " | corrected pass | corrected fail |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals: Counter[str] = Counter()
    for name in files:
        group = [o for o in outcomes if o.case.file == name]
        row = Counter()
        row["tests"] = len(group)
        row["skip"] = sum(o.native == "skip" for o in group)
        for kind in ("native", "interpreter", "corrected"):
            row[f"{kind} pass"] = sum(getattr(o, kind) == "pass" for o in group)
            row[f"{kind} fail"] = sum(getattr(o, kind) == "fail" for o in group)
        totals.update(row)
        lines.append(_row(name, row))
    lines.append(_row("**total**", totals))
    lines += ["", "## Native failures", ""]
    failures = [o for o in outcomes if o.native == "fail"]
    lines += [f"- `{o.case.id}`: `{_short(o.case.expr)}` -- {o.native_detail}" for o in failures] or ["None."]
    lines += [
        "",
        "## Where cel-python 0.5.0 fails (and facegate follows the spec)",
        "",
        "Every test below passes natively: facegate agrees with the conformance suite, not with",
        "cel-python.  Grouped by the correction that makes cel-python pass, or why none does.",
        "",
    ]
    by_reason: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if o.interpreter == "fail":
            by_reason.setdefault(_why_interpreter_fails(o.case), []).append(o)
    for reason, group in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
        lines += [f"### {reason} ({len(group)})", ""]
        for o in group:
            detail = (
                o.interpreter_detail
                if len(o.interpreter_detail) < 110
                else o.interpreter_detail[:107] + "..."
            )
            lines.append(f"- `{o.case.id}`: `{_short(o.case.expr)}` -- {detail}")
        lines.append("")
    lines += ["", "## Skipped", ""]
    reasons = Counter(o.native_detail.split(" `")[0] for o in outcomes if o.native == "skip")
    lines += [
        f"- {count} x {reason}" for reason, count in sorted(reasons.items(), key=lambda r: (-r[1], r[0]))
    ]
    lines += ["", "Skipped tests, by file:", ""]
    for name in files:
        skipped = [o for o in outcomes if o.case.file == name and o.native == "skip"]
        if skipped:
            lines.append(
                f"- {name}: "
                + ", ".join(f"`{o.case.section}/{o.case.name}` ({o.native_detail})" for o in skipped)
            )
    return "\n".join(lines) + "\n"


_UNCORRECTED = (
    ("fields/quoted_map_fields/", "not corrected: cel-python's grammar has no backtick-quoted field names"),
    ("macros2/", "not corrected: cel-python lacks the two-variable comprehension extension"),
    (
        "parse/string_literals/",
        (
            "not corrected: cel-python decodes escapes `\\?` `\\`` `\\X` and newlines "
            "in triple-quoted literals wrongly"
        ),
    ),
    (
        "parse/bytes_literals/",
        (
            "not corrected: cel-python decodes escapes `\\?` `\\`` `\\X` and newlines "
            "in triple-quoted literals wrongly"
        ),
    ),
    (
        "timestamps/",
        (
            "not corrected: cel-python's timestamps and durations are microsecond `datetime`s "
            "without `google.protobuf.*` type names"
        ),
    ),
    ("conversions/identity/timestamp", "not corrected: cel-python has no `timestamp(int)`"),
    ("comparisons/eq_literal/not_eq_dyn_timestamp_null", "not corrected: cel-python has no `timestamp(int)`"),
    ("conversions/int/double_int_min_range", "not corrected: cel-python accepts `int(-2.0**63)`"),
)


def _why_interpreter_fails(case: Case) -> str:
    """The correction that makes cel-python pass, or why none does."""
    for name in SPEC_CORRECTIONS:
        ok, _ = run_interpreter(case, frozenset([name]))
        if ok:
            return f"fixed by correction `{name}`"
    ok, _ = run_interpreter(case, frozenset(SPEC_CORRECTIONS))
    if ok:
        return "fixed by the corrections together"
    for prefix, reason in _UNCORRECTED:
        if case.id.startswith(prefix):
            return reason
    return "not corrected"


def _short(expr: str) -> str:
    flat = " ".join(expr.split())
    return flat if len(flat) <= 70 else flat[:67] + "..."


def _row(name: str, row: Counter[str]) -> str:
    cells = [
        row["tests"],
        row["skip"],
        row["native pass"],
        row["native fail"],
        row["interpreter pass"],
        row["interpreter fail"],
        row["corrected pass"],
        row["corrected fail"],
    ]
    return f"| {name} | " + " | ".join(str(c) for c in cells) + " |"


def _source_commit() -> str:
    source = SPEC / "SOURCE.txt"
    m = re.search(r"commit (\w+)", source.read_text()) if source.exists() else None
    return f"commit {m.group(1)}" if m else "unknown commit"


def main() -> None:
    outcomes = run_all()
    REPORT.write_text(render(outcomes), encoding="utf-8")
    failed = [o for o in outcomes if o.native == "fail"]
    print(f"wrote {REPORT.relative_to(ROOT)}; native failures: {len(failed)}")


if __name__ == "__main__":
    main()
