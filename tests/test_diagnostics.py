"""Diagnostics that teach: every problem in one run, did-you-mean, no follow-on noise, plain YAML errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import facegate
from facegate import PolicyError
from facegate._cases import check_cases


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _problems(pack: Path) -> list[str]:
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(pack)
    return [str(p) for p in exc.value.problems]


def test_every_problem_in_one_run_without_follow_on_noise(pack_copy):
    rules = pack_copy / "rules" / "rules.yaml"
    _edit(rules, "    effect: forbid\n    when: has(request.place)", "    effect: forbidd\n    when: has(request.place)")
    _edit(rules, 'request.operation in ["detect", "verify"]', 'request.operation in ["detect", "verify"] and true')
    _edit(rules, "      - variables.has_consent", "      - variables.has_consent\n      - request.subject.agee > 3")
    _edit(rules, "request.subject.age < params.minor_age", "request.subject.age < params.minor_agee")
    _edit(pack_copy / "pack.yaml", "request.consent.type in", "request.consnet.type in")
    found = _problems(pack_copy)
    assert len(found) == 5, found
    expected = [
        "at /rules/1/effect: `forbidd` is not one of",  # a structure error ...
        "variable `has_consent`: undefined field `consnet` in `request`; did you mean `consent`?",  # ... hides no meaning error
        "unexpected input at `and true`; CEL writes `&&` for `and`",
        "undefined field `agee` in `request.subject`; did you mean `age`?",  # a second item of the same rule
        "unknown parameter `params.minor_agee`; did you mean `minor_age`?",
    ]
    for text in expected:
        assert any(text in m for m in found), (text, found)
    assert not any("unknown variable" in m for m in found), "the broken variable is reported once, not again where used"
    assert not any("no rule cites it" in m for m in found), "a broken rule's provision is not reported as uncited"


def test_every_problem_inside_one_condition_in_one_run(pack_copy):
    """Two mistakes in one CEL condition are both reported, each with its column, and a mistake
    is not reported again where its value is used (``request.subject.agee > 3`` once)."""
    text = "request.subject.agee > 3 && request.operation == 3 && request.plase == 1"
    _edit(pack_copy / "rules" / "rules.yaml", "      - variables.has_consent", f"      - {text}")
    found = [m for m in _problems(pack_copy) if "rule `" in m]
    assert len(found) == 3, found
    column = {part: text.index(part) + 1 for part in ("agee", "request.operation", "plase")}  # 1-based, in the condition
    assert found[0].endswith(f"undefined field `agee` in `request.subject`; did you mean `age`? (expression line 1, column {column['agee']})"), found
    assert found[1].endswith(f"no matching overload for `_==_` applied to `(string, int)` (expression line 1, column {column['request.operation']})"), found
    assert found[2].endswith(f"undefined field `plase` in `request`; did you mean `place`? (expression line 1, column {column['plase']})"), found


def test_undeclared_root_and_variable_names_get_a_suggestion(pack_copy):
    rules = pack_copy / "rules" / "rules.yaml"
    _edit(rules, "      - variables.has_consent", "      - variables.has_consnet")
    _edit(rules, "when: has(request.place) && has(request.place.type)", "when: has(reqest.place) && has(request.place.type)")
    found = _problems(pack_copy)
    assert any("unknown variable `variables.has_consnet`; did you mean `has_consent`?" in m for m in found), found
    assert any("undeclared reference to `reqest`; did you mean `request`?" in m for m in found), found


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("rules:\n\t- id: x\n", "a tab is used for indentation"),
        ("rules: [a, b\n", "not closed with `]`"),
        ("pack: {id: x\n", "not closed with `}`"),
        ("pack:\n  id: x\n   title: y\n", "check the indentation of this line"),
    ],
)
def test_yaml_syntax_errors_in_plain_words(pack_copy, text, hint):
    (pack_copy / "rules" / "broken.yaml").write_text("format: facegate/policy/v1\n" + text, encoding="utf-8")
    found = _problems(pack_copy)
    assert any("broken.yaml:" in m and hint in m for m in found), found


def test_has_without_a_guard_is_a_lint_warning(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "when: has(request.place) && has(request.place.type) && request.place.type == \"private_space\"",
          "when: has(request.place.type) && request.place.type == \"private_space\"")
    policy = facegate.load_policy(pack_copy)
    [lint] = [str(p) for p in policy.pack.lints]
    assert "ex2-no-private-spaces" in lint and "guard it first: `has(request.place) && has(request.place.type)`" in lint


def test_a_guard_in_an_earlier_when_item_counts(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "when: has(request.place) && has(request.place.type) && request.place.type == \"private_space\"",
          "when: [has(request.place), has(request.place.type) && request.place.type == \"private_space\"]")
    assert facegate.load_policy(pack_copy).pack.lints == ()


def test_check_validates_the_case_files(pack_copy):
    cases = pack_copy / "cases" / "cases.yaml"
    _edit(cases, "exercises: [EX-1, EX-3]", "exercises: [EX-1, EX-33]")
    _edit(cases, "expect: {decision: deny, determining: [ex2-no-private-spaces]", "expect: {decision: deny, determining: [ex2-no-private-space]")
    _edit(cases, "request: {operation: verify, purpose: payment, subject: {age: 30}}", "request: {operation: verify, purpose: payment, subject: {agee: 30}}")
    _edit(cases, "obligations: [discard_raw_image, retention_max_days]", "obligations: [discard_raw_images, retention_max_days]")
    found = [str(p) for p in check_cases(facegate.load_policy(pack_copy))]
    assert any("unknown provision `EX-33`; did you mean `EX-3`?" in m for m in found), found
    assert any("unknown rule `ex2-no-private-space`; did you mean `ex2-no-private-spaces`?" in m for m in found), found
    assert any("/request/subject/agee" in m and "did you mean `age`?" in m for m in found), found
    assert any("unknown obligation type `discard_raw_images`" in m for m in found), found
    assert all("cases/cases.yaml:" in m for m in found)


def test_a_guard_in_when_covers_unless_and_unguarded_unless_is_linted(pack_copy):
    rules = pack_copy / "rules" / "rules.yaml"
    _edit(rules, "    unless: has(request.consent) && has(request.consent.given_by) && request.consent.given_by == \"guardian\"",
          "    unless: has(request.consent.given_by) && request.consent.given_by == \"guardian\"")
    [lint] = [str(p) for p in facegate.load_policy(pack_copy).pack.lints]
    assert "/rules/2/unless" in lint and "has(request.consent) && has(request.consent.given_by)" in lint
    _edit(rules, "    when: request.subject.age < params.minor_age", "    when: [has(request.consent), request.subject.age < params.minor_age]")
    assert facegate.load_policy(pack_copy).pack.lints == ()
