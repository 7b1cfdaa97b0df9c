"""The gate with the SQLite evidence store: consent from the registry, templates, withdrawal."""

from __future__ import annotations

import pytest

import facegate
from facegate import Gate
from facegate._plugins import load_registry
from facegate.store import SQLiteStore
from facegate.testing import fake_info, fake_plugin, synthetic_face_image
from facegate.testing._conformance import conformance_policy
from fg_paths import EXAMPLE


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "fg.db") as s:
        yield s


@pytest.fixture
def registry():
    return load_registry((), extra=[("fakes", fake_plugin(fake_info()))])


def test_enrolled_template_rests_on_the_consent_record_and_withdrawal_erases_it(store, registry):
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store, consent_mode="registry-overrides")
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["attendance"])
    enroll = {"operation": "enroll", "purpose": "attendance", "subject": {"id": "alice"}, "storage": {"retention_days": 30, "location": "server"}}
    out = gate.process(enroll, synthetic_face_image(7))
    assert out.status == "executed", out.error
    found = gate.process({"operation": "identify", "purpose": "attendance", "subject": {"id": "probe"}}, synthetic_face_image(7))
    assert [m.subject_id for m in found.result.matches] == ["alice"]
    store.withdraw_consent(cid)
    gone = gate.process({"operation": "identify", "purpose": "attendance", "subject": {"id": "probe"}}, synthetic_face_image(7))
    assert gone.status == "executed" and gone.result.matches == ()
    assert store.audit.verify().ok


def test_registry_only_ignores_consent_the_request_claims(store, registry):
    policy = facegate.load_policy(EXAMPLE)
    gate = Gate(policy, "fake", registry=registry, store=store, consent_mode="registry-only")
    req = {"operation": "verify", "purpose": "payment", "subject": {"id": "bob", "age": 30},
           "consent": {"type": "separate", "purposes": ["payment"]}}
    assert gate.process(req, synthetic_face_image(), reference=synthetic_face_image()).decision.effect == "deny"
    store.consent.grant("bob", type="separate", given_by="subject", purposes=["payment"])
    out = gate.process(req, synthetic_face_image(), reference=synthetic_face_image())
    assert out.decision.effect == "permit" and out.result.same_person
    store.consent.withdraw("bob")
    assert gate.process(req, synthetic_face_image(), reference=synthetic_face_image()).decision.effect == "deny"


def test_stored_persons_comes_from_the_gallery_not_the_caller(store, registry):
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store)
    for i in range(3):
        gate.process({"operation": "enroll", "purpose": "attendance", "subject": {"id": f"p{i}"}, "storage": {"retention_days": 5}}, synthetic_face_image(i))
    gate.process({"operation": "detect", "purpose": "attendance", "actor": {"stored_persons": 999999}}, synthetic_face_image())
    decisions = [r for r in store.audit.query(kind="decision")]
    assert decisions[-1]["record"]["request"]["actor"]["stored_persons"] == 3


def test_the_log_never_holds_the_subject_id_in_clear(store, registry):
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store)
    gate.process({"operation": "detect", "purpose": "attendance", "subject": {"id": "carol-secret-id"}}, synthetic_face_image())
    assert "carol-secret-id" not in str(list(store.audit.query()))


def test_observers_see_records_masked_as_the_log_holds_them(store):
    import types

    from facegate import hookimpl

    seen = []

    @hookimpl
    def record_decision(record):
        seen.append(record)

    observer = types.ModuleType("observer")
    observer.record_decision = record_decision
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info())), ("observer", observer)])
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store)
    gate.process({"operation": "detect", "purpose": "attendance", "subject": {"id": "dave-secret-id"}}, synthetic_face_image())
    assert [r["kind"] for r in seen] == ["decision", "outcome"]
    assert "dave-secret-id" not in str(seen) and seen[0]["request"]["subject"]["id"].startswith("hmac-sha256:")


def test_concurrent_requests_through_one_gate_each_get_their_own_result(store, registry):
    """Eight threads share a gate: every verify gets the answer for its own images, denies stay denied,
    and the log holds one decision and one outcome per request in one intact chain."""
    import threading

    gate = Gate(conformance_policy(), "fake", registry=registry, store=store)
    threads, per = 8, 12
    answers: list[tuple[bool, bool]] = []
    denied: list[str] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(per):
            if i % 4 == 3:  # a request the policy cannot permit (malformed): never reaches the recognizer
                out = gate.process({"operation": "verify"}, synthetic_face_image(t), reference=synthetic_face_image(t))
                with lock:
                    denied.append(out.status)
                continue
            same = (t + i) % 2 == 0
            out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(t + 1),
                               reference=synthetic_face_image(t + 1 if same else t + 2))
            with lock:
                answers.append((same, out.status == "executed" and out.result.same_person))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not any(w.is_alive() for w in workers)
    assert len(answers) == threads * per * 3 // 4 and all(same == got for same, got in answers)
    assert denied == ["denied"] * (threads * per // 4)
    report = store.audit.verify()
    assert report.ok and report.checked == 2 * threads * per
