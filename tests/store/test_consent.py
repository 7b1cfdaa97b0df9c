"""The consent registry: evidence the gate can look up instead of trusting the request."""

from __future__ import annotations

import pytest

from facegate.store import StoreError

T0 = "2025-01-01T00:00:00Z"
T1 = "2025-02-01T00:00:00Z"
T2 = "2025-03-01T00:00:00Z"
T3 = "2025-04-01T00:00:00Z"


def grant(store, subject="alice", **over):
    args = {"type": "separate", "given_by": "subject", "purposes": ["access_control"], "at": T0, **over}
    return store.consent.grant(subject, **args)


def test_lookup_answers_in_the_request_contracts_shape(store):
    cid = grant(store)
    assert store.consent.lookup("alice", "access_control", at=T1) == {
        "type": "separate", "given_by": "subject", "purposes": ["access_control"], "withdrawn": False,
        "record_id": cid,
    }
    assert store.consent.lookup("bob", at=T1) is None
    assert store.consent.lookup("alice", "marketing", at=T1) is None  # no consent covers it
    assert store.consent.lookup("alice", at="2024-12-31T23:59:59Z") is None  # not granted yet


def test_withdrawal_takes_effect_at_once_and_keeps_the_evidence(store):
    cid = grant(store)
    assert store.consent.withdraw("alice", at=T1) == [cid]
    assert store.consent.lookup("alice", "access_control", at=T1)["withdrawn"] is True
    assert store.consent.lookup("alice", "access_control", at="2025-01-31T23:59:59Z")["withdrawn"] is False
    record = store.consent.get(cid)
    assert record["withdrawn_at"] == "2025-02-01T00:00:00.000000Z" and record["granted_at"].startswith("2025-01-01")
    assert store.consent.withdraw("alice", at=T2) == []  # already withdrawn: unchanged
    assert store.consent.get(cid)["withdrawn_at"].startswith("2025-02-01")


def test_withdraw_by_record_id_leaves_the_subjects_other_consents(store):
    first = grant(store)
    second = grant(store, purposes=["payment"])
    assert store.consent.withdraw(first, at=T1) == [first]
    assert store.consent.lookup("alice", "access_control", at=T2)["withdrawn"] is True
    assert store.consent.lookup("alice", "payment", at=T2) == {
        "type": "separate", "given_by": "subject", "purposes": ["payment"], "withdrawn": False, "record_id": second}


def test_expiry_reads_as_no_longer_in_force(store):
    grant(store, expires_at=T1)
    assert store.consent.lookup("alice", "access_control", at="2025-01-15T00:00:00Z")["withdrawn"] is False
    assert store.consent.lookup("alice", "access_control", at=T1)["withdrawn"] is True


def test_lookup_prefers_an_in_force_consent_of_the_strongest_type(store):
    bundled = grant(store, type="bundled", at=T1)
    separate = grant(store, type="separate", at=T0)
    assert store.consent.lookup("alice", "access_control", at=T2)["record_id"] == separate
    store.consent.withdraw(separate, at=T2)
    assert store.consent.lookup("alice", "access_control", at=T3)["record_id"] == bundled
    store.consent.withdraw(bundled, at=T3)
    gone = store.consent.lookup("alice", "access_control", at=T3)
    assert gone["withdrawn"] is True and gone["record_id"] == bundled  # the latest one answers


def test_a_guardians_consent_is_recorded_as_such(store):
    grant(store, "child-1", given_by="guardian")
    assert store.consent.lookup("child-1", "access_control", at=T1)["given_by"] == "guardian"


@pytest.mark.parametrize(("over", "message"), [
    ({"type": "none"}, "consent type `none`"),
    ({"given_by": "parent"}, "given_by `parent`"),
    ({"purposes": []}, "non-empty list"),
    ({"purposes": "access_control"}, "non-empty list"),
    ({"purposes": ["acess_control"]}, "purpose `acess_control`"),
    ({"expires_at": T0}, "not after"),
    ({"at": "2025-01-01T00:00:00"}, "no time zone"),
])
def test_grant_refuses_what_would_be_weak_evidence(store, over, message):
    with pytest.raises(StoreError, match=message):
        grant(store, **over)


def test_grants_and_withdrawals_are_logged_pseudonymously(store):
    cid = grant(store)
    store.consent.withdraw(cid, at=T1)
    records = [r["record"] for r in store.audit.query(kind="consent")]
    assert [r["action"] for r in records] == ["granted", "withdrawn"]
    assert {r["subject_pseudonym"] for r in records} == {store.audit.pseudonym("alice")}
    assert all("alice" not in str(r) for r in records)
