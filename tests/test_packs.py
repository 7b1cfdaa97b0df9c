"""The packs of the law in force: each passes its own cases with full provision coverage, carries
the "not reviewed by a lawyer" notice, open questions and a current review document."""

from __future__ import annotations

import re

import pytest
import yaml

import facegate
from facegate import review as _review
from facegate._cases import run_pack_tests
from fg_paths import ROOT

NEW_PACKS = ["cn-cac-2025", "eu-ai-act-art5", "us-il-bipa"]


@pytest.fixture(scope="module", params=NEW_PACKS)
def pack(request):
    root = ROOT / "policies" / request.param
    return root, facegate.load_policy(root)


def test_every_case_passes_with_full_provision_coverage(pack):
    root, policy = pack
    report = run_pack_tests(policy, root)
    assert [r.id for r in report.results if not r.passed] == []
    assert report.coverage_percent == 100.0 and report.passed
    assert len(report.results) >= 30


def test_the_review_notice_the_open_questions_and_the_review_document(pack):
    root, policy = pack
    assert "NOT REVIEWED BY A LAWYER" in policy.pack.meta["review_notice"]["en"]
    assert all(r.review["status"] == "draft" for r in policy.rules)
    questions = yaml.safe_load((root / "open-questions.yaml").read_text(encoding="utf-8"))["questions"]
    known = {p.provision for p in policy.pack.provisions}
    assert questions and all(set(q["provisions"]) <= known for q in questions)
    markdown, page = _review.render(policy)
    assert (root / "REVIEW.md").read_text(encoding="utf-8") == markdown, f"run `facegate docs {root}`"
    assert (root / "REVIEW.html").read_text(encoding="utf-8") == page
    assert "NOT REVIEWED BY A LAWYER" in markdown


def test_every_article_of_the_2025_measures_is_accounted_for():
    policy = facegate.load_policy(ROOT / "policies" / "cn-cac-2025")
    covered: set[int] = set()
    for p in policy.pack.provisions:
        numbers = [int(n) for n in re.findall(r"\d+", p.article or "")]
        covered |= set(range(numbers[0], numbers[-1] + 1)) if numbers else set()
        assert p.enforceable or p.reason, p.provision
        assert p.text.get("grade"), f"{p.provision} carries no evidence grade"
    assert covered == set(range(1, 21))
    not_found = [p for p in policy.pack.provisions if "X" in p.text["grade"]]
    assert [p.provision for p in not_found] == ["CN25-16-18"] and not not_found[0].enforceable


def test_decisions_show_the_evidence_grade_of_each_determining_provision():
    policy = facegate.load_policy(ROOT / "policies" / "cn-cac-2025")
    request = {"operation": "verify", "purpose": "other", "jurisdiction": "CN", "time": "2025-09-01T10:00:00+08:00",
               "cn": {"place": {"private_space": "public_toilet"}}}
    decision = policy.decide(request)
    grades = {d["provision"]: d["grade"] for d in decision.determining}
    assert grades["CN25-04"] == "A" and grades["CN25-13"] == ["O", "S"] and grades["CN25-05"] == "A"
    assert decision.to_dict()["determining"][0]["grade"]
