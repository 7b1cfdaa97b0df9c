"""Format v2: packs declare their own facts, operations, languages and evidence grades."""

from __future__ import annotations

import re

from fg_paths import ROOT

from facegate._schema import load_schema, violations
from facegate._yaml import load_yaml_text

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
