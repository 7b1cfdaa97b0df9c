"""The template gallery: stamped enrolment, 1:N and 1:1 matching, erasure and retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import facegate.store._gallery as gallery_module
from facegate.store import AuditWriteError, SQLiteStore, StoreError

STAMPS = {"purpose": "access_control", "consent_id": None, "retention_days": 30, "location": "server",
          "model_id": "m1"}


def enroll(store, subject, vector, **over):
    return store.gallery.enroll(subject, vector, **{**STAMPS, **over})


def test_enrolment_is_stamped(store, unit):
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
    tid = enroll(store, "alice", unit(), consent_id=cid, decision_id="dec-1", location="on_device")
    stamps = store.gallery.get(tid)
    assert stamps["subject_id"] == "alice" and stamps["consent_id"] == cid and stamps["decision_id"] == "dec-1"
    assert stamps["purpose"] == "access_control" and stamps["location"] == "on_device" and stamps["model_id"] == "m1"
    enrolled = datetime.fromisoformat(stamps["enrolled_at"])
    assert datetime.fromisoformat(stamps["expires_at"]) - enrolled == timedelta(days=30)
    logged = next(store.audit.query(kind="enrollment"))["record"]
    assert logged["template_id"] == tid and logged["subject_pseudonym"] == store.audit.pseudonym("alice")


@pytest.mark.parametrize(("over", "message"), [
    ({"location": "cross_border"}, "location `cross_border` is not allowed"),
    ({"purpose": "fun"}, "purpose `fun`"),
    ({"retention_days": 0}, "retention_days"),
    ({"retention_days": None}, "retention_days"),
    ({"consent_id": "consent-missing"}, "not in force"),
    ({"model_id": ""}, "model_id"),
])
def test_enrolment_refuses_what_the_store_or_the_evidence_does_not_allow(tmp_path, unit, over, message):
    with SQLiteStore(tmp_path / "g.db", storage_locations=["on_device", "server"]) as store:
        with pytest.raises(StoreError, match=message):
            enroll(store, "alice", unit(), **over)
        assert store.gallery.count_subjects() == 0


def test_enrolment_needs_consent_of_this_subject_for_this_purpose(store, unit):
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["payment"])
    with pytest.raises(StoreError, match="not in force"):
        enroll(store, "alice", unit(), consent_id=cid)  # wrong purpose
    with pytest.raises(StoreError, match="not in force"):
        enroll(store, "bob", unit(), consent_id=cid, purpose="payment")  # someone else's consent
    store.consent.withdraw(cid)
    with pytest.raises(StoreError, match="not in force"):
        enroll(store, "alice", unit(), consent_id=cid, purpose="payment")  # withdrawn


@pytest.mark.parametrize("bad", [np.zeros(128, np.float32), np.full(128, np.nan, np.float32),
                                 np.ones((2, 64), np.float32), np.array([], np.float32), "vector"])
def test_enrolment_refuses_malformed_vectors(store, bad):
    with pytest.raises(StoreError):
        enroll(store, "alice", bad)


def test_a_models_templates_keep_one_dimension(store, unit):
    enroll(store, "alice", unit(128))
    with pytest.raises(StoreError, match="128 dimensions, got 64"):
        enroll(store, "bob", unit(64))
    enroll(store, "bob", unit(64), model_id="m2")
    with pytest.raises(StoreError, match="2 models; pass `model_id`"):
        store.gallery.identify(unit(128), threshold=0.0)
    with pytest.raises(StoreError, match="probe has 64 dimensions"):
        store.gallery.identify(unit(64), threshold=0.0, model_id="m1")


def _oracle(matrix, subjects, probe, k, threshold, metric):
    if metric == "cosine":
        unit_rows = matrix / np.linalg.norm(matrix, axis=1)[:, None]
        scores = unit_rows @ (probe / np.linalg.norm(probe))
        order = sorted(range(len(subjects)), key=lambda i: -scores[i])[:k]
        return [(subjects[i], scores[i]) for i in order if scores[i] >= threshold]
    scores = np.linalg.norm(matrix - probe, axis=1)
    order = sorted(range(len(subjects)), key=lambda i: scores[i])[:k]
    return [(subjects[i], scores[i]) for i in order if scores[i] <= threshold]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.sampled_from(["cosine", "euclidean"]), st.integers(0, 2**32 - 1),
       st.floats(-0.5, 1.5))
def test_identify_agrees_with_a_brute_force_oracle(tmp_path_factory, n, k, metric, seed, threshold):
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((n, 16)).astype(np.float32)
    probe = rng.standard_normal(16).astype(np.float32)
    with SQLiteStore(tmp_path_factory.mktemp("g") / "g.db", log_store_events=False) as store:
        for i, row in enumerate(matrix):
            enroll(store, f"s{i}", row)
        got = store.gallery.identify(probe, k=k, threshold=threshold, metric=metric)
    expected = _oracle(matrix, [f"s{i}" for i in range(n)], probe, k, threshold, metric)
    assert [m.subject_id for m in got] == [s for s, _ in expected]
    assert np.allclose([m.score for m in got], [score for _, score in expected], atol=1e-5)


def test_identify_finds_the_enrolled_person_first(store, unit):
    people = {f"p{i}": unit() for i in range(200)}
    for subject, vector in people.items():
        enroll(store, subject, vector)
    probe = people["p123"] + 0.05 * unit()
    top = store.gallery.identify(probe, k=3, threshold=0.5)
    assert top[0].subject_id == "p123" and top[0].score > 0.9 and len(top) == 1
    assert store.gallery.verify("p123", probe, threshold=0.5)[0] is True
    assert store.gallery.verify("p124", probe, threshold=0.5)[0] is False
    same, distance = store.gallery.verify("p123", probe, threshold=0.4, metric="euclidean")
    assert same and distance < 0.4
    assert store.gallery.verify("nobody", probe, threshold=0.5) == (False, None)


def test_the_cache_follows_changes_made_by_another_store_on_the_file(tmp_path, unit):
    path = tmp_path / "shared.db"
    v = unit()
    with SQLiteStore(path) as ours, SQLiteStore(path) as theirs:
        assert ours.gallery.identify(v, threshold=0.5) == []
        assert ours.gallery.count_subjects() == 0
        enroll(theirs, "alice", v)
        assert [m.subject_id for m in ours.gallery.identify(v, threshold=0.5)] == ["alice"]
        assert ours.gallery.count_subjects() == 1
        theirs.gallery.erase_subject("alice")
        assert ours.gallery.identify(v, threshold=0.5) == []
        assert ours.gallery.count_subjects() == 0


def test_count_subjects_counts_people_not_templates(store, unit):
    enroll(store, "alice", unit())
    enroll(store, "alice", unit())
    enroll(store, "bob", unit())
    assert store.gallery.count_subjects() == 2 and store.gallery.count_templates() == 3


def test_withdrawn_consent_stops_matching_at_once_and_erasure_follows(store, unit):
    v = unit()
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
    enroll(store, "alice", v, consent_id=cid)
    store.consent.withdraw(cid)
    assert store.gallery.identify(v, threshold=0.5) == []  # before any erasure
    assert store.gallery.verify("alice", v, threshold=0.5) == (False, None)
    assert store.gallery.count_subjects() == 1  # still held until erased
    assert store.gallery.erase_by_consent(cid) == 1
    assert store.gallery.count_subjects() == 0


def test_withdraw_consent_withdraws_and_erases(store, unit):
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
    enroll(store, "alice", unit(), consent_id=cid)
    enroll(store, "alice", unit(), consent_id=cid)
    assert store.withdraw_consent("alice") == ([cid], 2)
    erasures = [r["record"] for r in store.audit.query(kind="erasure")]
    assert erasures[0]["reason"] == "consent" and erasures[0]["count"] == 2


def test_templates_past_retention_stop_matching_and_are_purged(store, unit, monkeypatch):
    v = unit()
    enroll(store, "alice", v, retention_days=1)
    enroll(store, "bob", unit(), retention_days=10)
    later = datetime.now(UTC) + timedelta(days=2)
    monkeypatch.setattr(gallery_module, "utc_now", lambda: later)
    assert store.gallery.identify(v, threshold=0.5) == []
    assert store.gallery.purge_expired() == 1
    assert store.gallery.count_subjects() == 1
    assert store.gallery.purge_expired(now=later + timedelta(days=30)) == 1
    assert store.gallery.count_subjects() == 0
    assert [r["record"]["reason"] for r in store.audit.query(kind="erasure")] == ["retention", "retention"]


def test_a_purge_schedule_runs_at_once_and_stops(store, unit):
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
    enroll(store, "alice", unit(), consent_id=cid)
    store.consent.withdraw(cid)
    schedule = store.gallery.schedule_purge(every=3600)
    schedule.stop()
    assert schedule.purged == 1 and schedule.last_error is None
    assert store.gallery.count_subjects() == 0


def test_identify_validates_its_arguments(store, unit):
    enroll(store, "alice", unit())
    with pytest.raises(StoreError, match="metric"):
        store.gallery.identify(unit(), threshold=0.5, metric="manhattan")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="k `0`"):
        store.gallery.identify(unit(), k=0, threshold=0.5)
    assert store.gallery.identify(unit(), threshold=0.5, model_id="unknown") == []


def test_a_closed_store_refuses_gallery_and_consent_calls(tmp_path, unit):
    store = SQLiteStore(tmp_path / "c.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.gallery.identify(unit(), threshold=0.5)
    with pytest.raises(StoreError, match="closed"):
        store.consent.lookup("alice")


def test_enroll_many_is_all_or_none(store, unit):
    entry = {**STAMPS, "subject_id": "a", "vector": unit()}
    ids = store.gallery.enroll_many([entry, {**entry, "subject_id": "b", "vector": unit()}])
    assert len(ids) == 2 and store.gallery.count_subjects() == 2
    with pytest.raises(StoreError, match="64"):
        store.gallery.enroll_many([{**entry, "subject_id": "c"}, {**entry, "subject_id": "d", "vector": unit(64)}])
    with pytest.raises(StoreError, match="needs `model_id`"):
        store.gallery.enroll_many([{k: v for k, v in entry.items() if k != "model_id"}])
    assert store.gallery.count_subjects() == 2 and store.gallery.enroll_many([]) == []
    assert len(list(store.audit.query(kind="enrollment"))) == 2


def test_own_changes_update_the_cache_without_reloading_the_file(store, unit, monkeypatch):
    """A gate that enrols, withdraws and erases between identifies must not reload the gallery each time."""
    loads = []
    real_load = store.gallery._load
    monkeypatch.setattr(store.gallery, "_load", lambda model: loads.append(model) or real_load(model))
    people = {f"p{i}": unit() for i in range(50)}
    for subject, vector in people.items():
        enroll(store, subject, vector)
    assert store.gallery.identify(people["p1"], threshold=0.9)[0].subject_id == "p1"
    cid = store.consent.grant("late", type="separate", given_by="subject", purposes=["access_control"])
    late = unit()
    enroll(store, "late", late, consent_id=cid)
    assert store.gallery.identify(late, threshold=0.9)[0].subject_id == "late"
    store.consent.withdraw(cid)
    assert store.gallery.identify(late, threshold=0.9) == []
    store.gallery.erase_subject("p1")
    assert store.gallery.identify(people["p1"], threshold=0.9) == []
    assert store.gallery.identify(people["p2"], threshold=0.9)[0].subject_id == "p2"
    for i in range(100):  # past the first capacity: the matrix grows in place
        enroll(store, f"q{i}", unit())
    assert len(store.gallery.identify(people["p3"], k=500, threshold=-1)) == 149
    assert loads == ["m1"]


def test_when_the_log_cannot_be_written_enrolment_is_undone_but_erasure_and_withdrawal_stand(store, unit):
    """No unlogged enrolment or consent may be in force; an erasure or withdrawal must still happen."""
    v = unit()
    kept = enroll(store, "kept", unit())
    cid = store.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
    store.audit.close()  # the log fails from now on; the rest of the store still works
    with pytest.raises(AuditWriteError, match="template not enrolled"):
        enroll(store, "alice", v, consent_id=cid)
    assert store.gallery.identify(v, threshold=0.5) == [] and store.gallery.count_templates() == 1
    with pytest.raises(AuditWriteError, match="consent not recorded as in force"):
        store.consent.grant("bob", type="separate", given_by="subject", purposes=["access_control"])
    assert store.consent.lookup("bob", "access_control")["withdrawn"] is True
    with pytest.raises(AuditWriteError, match="consent withdrawn but"):
        store.consent.withdraw(cid)
    assert store.consent.lookup("alice", "access_control")["withdrawn"] is True
    with pytest.raises(AuditWriteError, match="erased 1 templates but"):
        store.gallery.erase_subject("kept")
    assert store.gallery.get(kept) is None
