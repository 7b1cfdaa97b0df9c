"""Format v2: packs declare their own facts, operations, languages and evidence grades."""

from __future__ import annotations

import re

from facegate._schema import load_schema, violations
from facegate._yaml import load_yaml_text
from fg_paths import ROOT

DOCS = ROOT / "docs"


def _doc_example_text() -> str:
    text = (DOCS / "policy-language.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# yaml-language-server[^\n]*\nformat: facegate/policy/v2\n.*?)```", text, re.S)
    assert block is not None, "policy-language.md shows a v2 pack.yaml"
    return block.group(1)


def _doc_example() -> dict:
    doc, problems = load_yaml_text(_doc_example_text(), "pack.yaml")
    assert problems == [] and doc is not None
    return doc.data


def test_the_documented_v2_pack_document_is_valid():
    doc = _doc_example()
    assert list(violations("policy.v2.json", doc)) == []
    assert {"facts", "operations", "languages", "evidence_grades", "governs"} <= set(doc)


def test_v2_schema_refuses_an_array_fact_without_a_bound_and_a_fact_without_a_description():
    doc = _doc_example()
    doc["facts"]["recipients"] = {"type": "array", "items": {"type": "string"}, "description": {"en": "who receives it"}}
    doc["facts"]["nameless"] = {"type": "boolean"}
    found = dict(violations("policy.v2.json", doc))
    assert any(p.startswith("/facts/recipients") for p in found), found
    assert any(p.startswith("/facts/nameless") for p in found), found


def test_the_core_envelope_is_a_subset_of_request_v1():
    """A v1 request's core fields mean the same under v2: every core field is defined identically."""
    core, v1 = load_schema("request.v2.json"), load_schema("request.v1.json")

    def strip(schema):
        if isinstance(schema, dict):
            return {k: strip(v) for k, v in schema.items() if k != "description"}
        return schema

    for name, field in core["properties"].items():
        if name == "time":
            continue  # new in v2
        if field.get("type") == "object":
            for sub, sub_schema in field["properties"].items():
                assert strip(sub_schema) == strip(v1["properties"][name]["properties"][sub]), f"{name}.{sub}"
        else:
            assert strip(field) == strip(v1["properties"][name]), name


# -- loading a v2 pack ---------------------------------------------------------------------------

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import facegate  # noqa: E402
from facegate import PolicyError  # noqa: E402
from facegate._cases import run_pack_tests  # noqa: E402
from facegate._facts import Declaration  # noqa: E402
from facegate._pack import load_pack  # noqa: E402

FACTS_PACK = ROOT / "policies" / "example-facts"
CAC = ROOT / "policies" / "cn-cac-2023-draft"


@pytest.fixture
def facts_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "example-facts"
    shutil.copytree(FACTS_PACK, dest)
    return dest


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _messages(exc: pytest.ExceptionInfo[PolicyError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_a_pack_with_its_own_facts_loads_tests_and_renders(tmp_path):
    policy = facegate.load_policy(FACTS_PACK)
    assert "disclose" in policy.operations and "release" in policy.request_schema["properties"]
    report = run_pack_tests(policy)
    assert report.passed and len(report.results) == 6 and report.coverage_percent == 100.0
    from facegate.review import write_review

    written = write_review(policy, tmp_path)
    md = next(p for p in written if p.suffix == ".md").read_text(encoding="utf-8")
    assert "exd-3-disclose-on-a-ground" in md and "## Facts this pack reads" in md and "`request.disclosure.basis`" in md
    assert "Chinese" not in md and "中文" not in md


def test_a_declared_fact_decides_and_an_undeclared_one_is_an_invalid_request():
    policy = facegate.load_policy(FACTS_PACK)
    ok = {"operation": "disclose", "purpose": "other", "actor": {"private_entity": True}, "disclosure": {"basis": "subject_consent"}}
    d = policy.decide(ok)
    assert d.effect == "permit" and d.determining[0]["message"] == {"en": "disclosure on a ground the statute allows", "detail": "ground: subject_consent"}
    cac_fact = {**ok, "place": {"type": "public_place"}}  # a CAC fact this pack does not declare
    d = policy.decide(cac_fact)
    assert d.reason == "invalid_request" and d.violations[0]["pointer"] == "/place"
    typo = {**ok, "disclosure": {"basis": "subject_consnet"}}
    d = policy.decide(typo)
    assert d.reason == "invalid_request" and "did you mean `subject_consent`" in d.violations[0]["message"]


def test_v1_requests_stay_valid_for_the_v1_cac_pack():
    policy = facegate.load_policy(CAC)
    assert policy.pack.format == "facegate/policy/v1" and "place" in policy.request_schema["properties"]
    d = policy.decide({"operation": "disclose", "purpose": "other"})
    assert d.reason == "invalid_request"  # v1 packs know no decide-only operations


def test_a_condition_reading_an_undeclared_fact_is_a_load_error(facts_copy):
    _edit(facts_copy / "rules" / "rules.yaml", "request.release.written\n", "request.release.signed\n")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    assert any("signed" in m and "rules.yaml" in m for m in _messages(exc)), _messages(exc)


def test_redefining_a_core_field_is_a_load_error(facts_copy):
    _edit(facts_copy / "pack.yaml", "facts:\n", "facts:\n  purpose: {type: string, description: {en: mine}}\n")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    assert any("/facts/purpose" in m and "core request envelope" in m for m in _messages(exc)), _messages(exc)


def test_declaring_a_core_operation_is_a_load_error(facts_copy):
    _edit(facts_copy / "pack.yaml", "operations:\n", "operations:\n  verify: {description: {en: again}}\n")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    assert any("/operations/verify" in m for m in _messages(exc)), _messages(exc)


def test_two_packs_declaring_one_fact_differently_is_a_load_error_naming_both(facts_copy):
    other = Declaration("us-other-pack", None, {"disclosure": {"type": "object", "description": {"en": "x"},
                        "properties": {"basis": {"type": "string", "description": {"en": "free text"}}}}}, {}, "en")
    with pytest.raises(PolicyError) as exc:
        load_pack(facts_copy, companions=(other,))
    [message] = [m for m in _messages(exc) if "disclosure.basis" in m]
    assert "us-other-pack" in message and "pack.yaml" in message
    same = Declaration("us-same-pack", None, {"disclosure": {"type": "object", "description": {"en": "y"},
                       "properties": {"recipients": {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 200},
                                                     "description": {"en": "described otherwise, same shape"}}}}}, {"sell": {"description": {"en": "s"}}}, "en")
    assert load_pack(facts_copy, companions=(same,)).revision


def test_languages_are_the_packs(facts_copy):
    rules = facts_copy / "rules" / "rules.yaml"
    _edit(rules, 'message: {en: "collection with a written release"}', 'message: {eng: "collection with a written release"}')
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    found = _messages(exc)
    assert any("the `en` text is missing" in m for m in found), found
    assert any("language `eng` is not declared; did you mean `en`?" in m for m in found), found


def test_a_pack_may_require_chinese_and_then_every_text_needs_it(facts_copy):
    _edit(facts_copy / "pack.yaml", "  required: [en]", "  required: [en, zh]")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    found = _messages(exc)
    assert any("required language `zh` is not declared" in m for m in found), found


def test_evidence_grades_are_the_packs(facts_copy):
    _edit(facts_copy / "rules" / "rules.yaml", "grade: [P, M]", "grade: [P, Q]")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    assert any("evidence grade `Q` is not in the pack's `evidence_grades` (P, M, X)" in m for m in _messages(exc)), _messages(exc)


def test_mixing_formats_in_one_pack_is_refused(facts_copy):
    _edit(facts_copy / "rules" / "rules.yaml", "format: facegate/policy/v2", "format: facegate/policy/v1")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    assert any("one pack, one format" in m for m in _messages(exc)) or exc.value.problems


def test_pack_blocks_belong_in_the_pack_document(facts_copy):
    _edit(facts_copy / "rules" / "rules.yaml", "variables:\n", "languages: {declared: [en]}\nvariables:\n")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(facts_copy)
    assert any("`languages` belongs in the document that carries `pack`" in m for m in _messages(exc)), _messages(exc)


@pytest.mark.parametrize("pack", [FACTS_PACK, CAC], ids=["v2", "v1"])
def test_the_revision_is_the_content_not_the_folder(pack, tmp_path):
    moved = tmp_path / "somewhere" / "renamed-pack"
    shutil.copytree(pack, moved)
    assert load_pack(moved).revision == load_pack(pack).revision
    _edit(moved / "pack.yaml", "version: ", "version: 9")
    assert load_pack(moved).revision != load_pack(pack).revision


def test_the_gate_never_executes_a_decide_only_operation():
    from facegate import Gate
    from facegate._plugins import load_registry
    from facegate.testing import MemoryAudit, fake_info, fake_plugin, synthetic_face_image

    calls: list[str] = []

    class Counting:
        def __init__(self, config):
            from facegate.testing import FakeRecognizer

            self.inner = FakeRecognizer(config)

        def detect(self, image):
            calls.append("detect")
            return self.inner.detect(image)

        def embed(self, image, face):
            calls.append("embed")
            return self.inner.embed(image, face)

        def analyze(self, image, face, attributes):
            calls.append("analyze")
            return self.inner.analyze(image, face, attributes)

    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info("counting", factory=Counting)))])
    audit = MemoryAudit()
    gate = Gate(facegate.load_policy(FACTS_PACK), "counting", registry=registry, audit=audit, isolation="none")  # counts here
    out = gate.process({"operation": "disclose", "purpose": "other", "actor": {"private_entity": True},
                        "disclosure": {"basis": "subject_consent"}}, synthetic_face_image())
    assert out.decision.effect == "permit" and out.result is None and calls == []
    assert "decide-only" in (out.error or "") and out.status == facegate.Status.ERROR
    assert [r["kind"] for r in audit.records] == ["decision", "outcome"]


def test_the_requests_doc_example_decides_as_described():
    import json

    text = (DOCS / "requests.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text, re.S)
    assert block is not None
    request = json.loads(block.group(1))
    policy = facegate.load_policy(FACTS_PACK)
    d = policy.decide(request)
    assert d.effect == "permit" and [x["rule"] for x in d.determining] == ["exd-3-disclose-on-a-ground"]
    assert "is permitted by `exd-3-disclose-on-a-ground`" in text
    d = policy.decide({**request, "disclosure": {"basis": "none"}})
    assert (d.effect, d.reason) == ("deny", "no_permit")
    d = policy.decide({**request, "place": {"type": "public_place"}})
    assert d.reason == "invalid_request"


# -- one exception tree, one vocabulary ------------------------------------------------------------


def test_every_user_facing_error_is_a_facegate_error():
    from facegate import cel
    from facegate._compile import CompileError
    from facegate.errors import FacegateError

    for cls in (cel.CELCompileError, cel.CELSyntaxError, cel.CELCheckError, cel.CELEvalError, cel.CELUsageError, CompileError):
        assert issubclass(cls, FacegateError), cls
    with pytest.raises(FacegateError):
        cel.compile("1 +")
    with pytest.raises(cel.CELUsageError):
        cel.compile("1", backend="nope")


def test_a_plugin_cel_function_named_like_a_builtin_is_a_plugin_error():
    import types

    from facegate import PluginError, hookspecs
    from facegate._plugins import load_registry

    @hookspecs.hookimpl
    def register_cel_functions(register):
        register("size", lambda x: 1, ["dyn"], "int")

    plugin = types.ModuleType("shadowing_plugin")
    plugin.register_cel_functions = register_cel_functions  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="`size` is a standard cel function"):
        load_registry((), extra=[("shadowing", plugin)])


def test_vocabularies_come_from_the_schemas():
    from facegate import _vocabulary, recognition
    from facegate.store import _interface

    core = load_schema("request.v2.json")["properties"]
    assert _interface.PURPOSES == tuple(core["purpose"]["enum"]) == tuple(load_schema("request.v1.json")["properties"]["purpose"]["enum"])
    assert _interface.LOCATIONS == tuple(core["storage"]["properties"]["location"]["enum"])
    assert recognition.ATTRIBUTES == tuple(core["attributes"]["items"]["enum"])
    assert set(recognition.OPERATIONS) | {"erase"} == set(core["operation"]["enum"])
    rule = load_schema("policy.v1.json")["properties"]["rules"]["items"]["properties"]
    assert {e.value for e in _vocabulary.RuleEffect} == set(rule["effect"]["enum"])
    assert {m.value for m in _vocabulary.Mode} == set(rule["mode"]["enum"])


def test_reasons_and_outcomes_are_enumerations_that_read_as_strings():
    import json

    from facegate._vocabulary import Reason, RuleOutcome

    policy = facegate.load_policy(FACTS_PACK)
    d = policy.decide({"operation": "sell", "purpose": "other", "actor": {"private_entity": True}})
    assert d.reason is Reason.FORBIDDEN and d.reason == "forbidden"
    assert d.rules["exd-2-no-sale"] is RuleOutcome.APPLIED
    assert json.loads(json.dumps(d.to_dict()))["reason"] == "forbidden"


def test_packs_loaded_together_share_one_contract(facts_copy, tmp_path):
    first = facegate.load_policy(FACTS_PACK)
    other = tmp_path / "other"
    shutil.copytree(FACTS_PACK, other)
    _edit(other / "pack.yaml", "id: example-disclosure", "id: other-disclosure")
    _edit(other / "pack.yaml", "facts:\n", "facts:\n  retention:\n    type: object\n    description: {en: retention}\n"
          "    properties:\n      schedule_public: {type: boolean, description: {en: a public retention schedule}}\n")
    together = facegate.load_policy(other, companions=(first.pack.declaration(),))
    assert "retention" in together.request_schema["properties"] and "disclosure" in together.request_schema["properties"]
    _edit(other / "pack.yaml", "      written:\n        type: boolean", "      written:\n        type: string")
    with pytest.raises(PolicyError) as exc:
        facegate.load_policy(other, companions=(first.pack.declaration(),))
    assert any("release.written" in m and "example-disclosure" in m for m in _messages(exc)), _messages(exc)


def test_every_reason_is_documented():
    from facegate import Reason

    text = (DOCS / "decisions.md").read_text(encoding="utf-8")
    assert [r.value for r in Reason if f"`{r.value}`" not in text] == []
