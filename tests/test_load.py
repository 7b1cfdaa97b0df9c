"""Load phase: every problem is reported with file, line, column and JSON pointer."""

from __future__ import annotations

from pathlib import Path

import pytest

import facegate
from facegate import PolicyError


def _problems(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        facegate.load_policy(path)
    return [str(p) for p in info.value.problems]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_example_pack_loads(example_policy):
    assert example_policy.id == "example-consent"
    assert [r.id for r in example_policy.rules][:2] == ["ex1-verify-with-consent", "ex2-no-private-spaces"]
    assert example_policy.revision.startswith("sha256:") and len(example_policy.revision) == 71


def test_unknown_key_names_file_line_column_pointer_and_suggests(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "    effect: forbid\n    when: has(request.place) && has(request.place.type)", "    effect: forbid\n    whne: x\n    when: has(request.place) && has(request.place.type)")
    problems = _problems(pack_copy)
    assert len(problems) == 1
    assert problems[0].startswith("example/rules/rules.yaml:")
    assert "/rules/1/whne: unknown key `whne`; did you mean `when`?" in problems[0]
    line = int(problems[0].split(":")[1])
    assert (pack_copy / "rules" / "rules.yaml").read_text().splitlines()[line - 1].strip() == "whne: x"


def test_wrong_type_and_bad_enum_are_both_reported(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "mode: warn", "mode: loud")
    _edit(pack_copy / "rules" / "rules.yaml", "days: 30", "days: thirty")
    problems = _problems(pack_copy)
    assert any("/rules/4/mode" in p and "`loud`" in p for p in problems)
    assert any("/rules/0/obligations/1/days" in p for p in problems)


def test_malformed_yaml_is_located(pack_copy):
    (pack_copy / "rules" / "broken.yaml").write_text("format: facegate/policy/v1\nrules: [\n  - id: x\n", encoding="utf-8")
    problems = _problems(pack_copy)
    assert any(p.startswith("example/rules/broken.yaml:") and "malformed yaml" in p for p in problems)


def test_duplicate_yaml_keys_are_errors(pack_copy):
    _edit(pack_copy / "pack.yaml", "  version: 1.0.0\n", "  version: 1.0.0\n  version: 2.0.0\n")
    assert any("duplicate key `version`" in p for p in _problems(pack_copy))


def test_yaml_object_construction_is_refused(pack_copy):
    _edit(pack_copy / "pack.yaml", "status: draft", "status: !!python/object/apply:os.system ['true']")
    problems = _problems(pack_copy)
    assert any("malformed yaml" in p or "tag" in p for p in problems)


def test_cel_syntax_error_names_rule(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", 'request.operation in ["detect", "verify"]', 'request.operation in ["detect", "verify"')
    problems = _problems(pack_copy)
    assert any("/rules/0/when/0" in p and "rule `ex1-verify-with-consent`" in p for p in problems)


def test_unknown_variable_and_parameter(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "- variables.has_consent", "- variables.has_consnet")
    _edit(pack_copy / "rules" / "rules.yaml", "params.minor_age", "params.minor_agee")
    problems = _problems(pack_copy)
    assert any("unknown variable `variables.has_consnet`" in p for p in problems)
    assert any("unknown parameter `params.minor_agee`" in p for p in problems)


def test_duplicate_rule_id(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "id: ex2-no-private-spaces", "id: ex1-verify-with-consent")
    assert any("rule id `ex1-verify-with-consent` is already used" in p for p in _problems(pack_copy))


def test_enforceable_provision_without_rules(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "enforceable: false\n    reason: purpose clause; nothing to check per request", "enforceable: true")
    assert any("marked enforceable but no rule cites it" in p for p in _problems(pack_copy))


def test_obligation_rule_must_list_obligations(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "    obligations:\n      - type: display_signage\n", "")
    assert any("must list its `obligations`" in p for p in _problems(pack_copy))


def test_missing_pack_and_empty_folder(tmp_path):
    assert "policy pack not found" in _problems(tmp_path / "nope")[0]
    assert "no pack.yaml" in _problems(tmp_path)[0]


def test_not_utf8(pack_copy):
    (pack_copy / "rules" / "latin.yaml").write_bytes(b"format: facegate/policy/v1\nrules: []\n# \xe9\xff\n")
    assert any("not valid utf-8" in p for p in _problems(pack_copy))


def test_revision_changes_with_content_only(pack_copy, example_policy):
    same = facegate.load_policy(pack_copy)
    assert same.revision == example_policy.revision
    _edit(pack_copy / "rules" / "rules.yaml", "review: {status: draft}", "review: {status: reviewed, reviewer: A. Lawyer, date: 2024-03-01}")
    assert facegate.load_policy(pack_copy).revision != example_policy.revision


def test_variables_inside_string_literals_are_not_expanded():
    from facegate._pack import _expand

    text, unknown = _expand('variables.a && "variables.a" == x', {"a": "1 == 1"})
    assert text == '(1 == 1) && "variables.a" == x' and unknown == []


def test_syntax_error_column_refers_to_the_text_as_written(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "      - variables.has_consent", "      - variables.has_consent &&")
    problems = _problems(pack_copy)
    assert len(problems) == 1 and "(expression line 1, column 23)" in problems[0], problems


def test_unknown_request_field_is_a_load_error_with_rule_and_column(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "has(request.place) && has(request.place.type) && request.place.type == \"private_space\"",
          "has(request.place) && request.place.kind == \"private_space\"")
    problems = _problems(pack_copy)
    assert len(problems) == 1
    assert "rule `ex2-no-private-spaces`" in problems[0] and "kind" in problems[0] and "column" in problems[0]


def test_incompatible_types_known_from_the_schema_are_load_errors(pack_copy):
    _edit(pack_copy / "rules" / "rules.yaml", "request.subject.age < params.minor_age", 'request.subject.age < "fourteen"')
    problems = _problems(pack_copy)
    assert len(problems) == 1 and "rule `ex3-minor-needs-guardian`" in problems[0]


def test_expression_cost_limit_is_a_load_error(pack_copy):
    heavy = "[" + ",".join(["1"] * 60) + "].all(a, [" + ",".join(["1"] * 60) + "].all(b, [" + ",".join(["1"] * 60) + "].all(c, a + b + c > 0)))"
    _edit(pack_copy / "rules" / "rules.yaml", "when: request.subject.age < params.minor_age", f"when: '{heavy}'")
    problems = _problems(pack_copy)
    assert len(problems) == 1 and "cost" in problems[0], problems
