"""Google's CEL conformance suite: every in-scope test passes natively.

Scope, skips and cel-python's own results are in CONFORMANCE.md, which this test keeps
current: it fails when the committed report differs from a fresh run.
"""

from __future__ import annotations

import cel_conformance
import pytest


@pytest.fixture(scope="module")
def outcomes() -> list[cel_conformance.Outcome]:
    return cel_conformance.run_all()


def test_every_in_scope_conformance_test_passes(outcomes: list[cel_conformance.Outcome]) -> None:
    failures = [f"{o.case.id}: {o.case.expr} -- {o.native_detail}" for o in outcomes if o.native == "fail"]
    assert failures == []


def test_the_suite_was_found_and_mostly_in_scope(outcomes: list[cel_conformance.Outcome]) -> None:
    # Guards against a runner that silently skips everything.
    ran = [o for o in outcomes if o.native != "skip"]
    assert len(outcomes) > 1300
    assert len(ran) > 1000


def test_skips_are_only_protobuf_tests(outcomes: list[cel_conformance.Outcome]) -> None:
    reasons = {o.native_detail.split(" `")[0] for o in outcomes if o.native == "skip"}
    assert reasons <= {
        "uses protobuf message type",
        "protobuf message value",
        "constructs or reads protobuf test messages",
        "needs a protobuf container (package-qualified message names)",
    }


def test_corrections_only_ever_fix_cel_python(outcomes: list[cel_conformance.Outcome]) -> None:
    # The corrected interpreter is the differential oracle: it must never fail a test
    # that released cel-python passes.
    regressions = [o.case.id for o in outcomes if o.interpreter == "pass" and o.corrected == "fail"]
    assert regressions == []


def test_conformance_report_is_current(outcomes: list[cel_conformance.Outcome]) -> None:
    fresh = cel_conformance.render(outcomes)
    committed = cel_conformance.REPORT.read_text(encoding="utf-8")
    assert committed == fresh, "CONFORMANCE.md is stale: run `python tests/cel/cel_conformance.py`"
