"""Consent reaches every template the gate enrols, in every consent mode, and withdrawal ends it."""

from __future__ import annotations

import pytest

from facegate import Gate
from facegate._plugins import load_registry
from facegate.testing import fake_info, fake_plugin, synthetic_face_image
from facegate.testing._conformance import conformance_policy

IDENTIFY = {"operation": "identify", "purpose": "attendance", "subject": {"id": "probe"}}


def _enroll(consent=None):
    request = {"operation": "enroll", "purpose": "attendance", "subject": {"id": "alice"},
               "storage": {"retention_days": 30, "location": "server"}}
    if consent is not None:
        request["consent"] = consent
    return request


@pytest.fixture
def gate(store):
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    return Gate(conformance_policy(), "fake", registry=registry, store=store)  # the default: request-only


def _template(store, gate_out):
    return store.gallery.get(gate_out.result.template_id)


def test_request_only_template_carries_the_stated_consent_and_withdrawal_erases_it(store, gate):
    out = gate.process(_enroll({"type": "separate", "given_by": "subject", "purposes": ["attendance"]}),
                       synthetic_face_image(7))
    assert out.status == "executed", out.error
    template = _template(store, out)
    assert template["subject_id"] == "alice" and template["purpose"] == "attendance"
    assert template["decision_id"] == out.decision.decision_id
    consent = store.consent.get(template["consent_id"])
    assert consent["subject_id"] == "alice" and consent["type"] == "separate" and consent["given_by"] == "subject"
    assert consent["purposes"] == ["attendance"] and consent["withdrawn_at"] is None
    granted = [r["record"] for r in store.audit.query(kind="consent")]
    assert granted[-1]["source"] == "request" and granted[-1]["decision_id"] == out.decision.decision_id
    assert [m.subject_id for m in gate.process(IDENTIFY, synthetic_face_image(7)).result.matches] == ["alice"]

    store.consent.withdraw("alice")  # withdrawal alone: unusable at once, before any erasure
    assert gate.process(IDENTIFY, synthetic_face_image(7)).result.matches == ()
    assert store.gallery.purge_expired() == 1  # and the scheduled purge erases it
    assert store.gallery.get(template["template_id"]) is None


def test_withdraw_consent_by_subject_erases_the_request_only_template(store, gate):
    out = gate.process(_enroll({"type": "written", "given_by": "guardian", "purposes": ["attendance", "payment"]}),
                       synthetic_face_image(7))
    tid = out.result.template_id
    consent_id = store.gallery.get(tid)["consent_id"]
    assert consent_id is not None
    assert store.withdraw_consent("alice") == ([consent_id], 1)
    assert store.gallery.get(tid) is None
    assert gate.process(IDENTIFY, synthetic_face_image(7)).result.matches == ()
    assert store.audit.verify().ok


def test_unstated_giver_is_recorded_as_unstated_and_not_invented(store, gate):
    out = gate.process(_enroll({"type": "separate", "purposes": ["attendance"]}), synthetic_face_image(7))
    consent = store.consent.get(_template(store, out)["consent_id"])
    assert consent["given_by"] == "unstated"
    assert "given_by" not in store.consent.lookup("alice", "attendance")


@pytest.mark.parametrize("consent", [None, {"type": "none"}, {"type": "separate", "withdrawn": True}])
def test_a_request_stating_no_consent_in_force_enrols_on_another_basis(store, gate, consent):
    out = gate.process(_enroll(consent), synthetic_face_image(7))
    if out.status != "executed":  # the policy may refuse it: then nothing is stored at all
        assert store.gallery.count_templates() == 0
        return
    assert _template(store, out)["consent_id"] is None
    assert store.consent.lookup("alice") is None


def test_registry_consent_still_wins_over_the_request(store):
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store, consent_mode="registry-overrides")
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["attendance"])
    out = gate.process(_enroll({"type": "bundled", "given_by": "subject", "purposes": ["attendance"]}),
                       synthetic_face_image(7))
    assert _template(store, out)["consent_id"] == cid
    assert store.consent.lookup("alice", "attendance")["record_id"] == cid  # nothing recorded beside it
