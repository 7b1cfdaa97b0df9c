"""Several nodes on one store (two store objects on one file or one database, as two gate
processes or hosts would hold): consent and erasure committed on one are honoured by the other's
next decision and next identify -- with no waiting, on both backends."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from facegate import Gate
from facegate._plugins import load_registry
from facegate.store import open_store
from facegate.testing import fake_info, fake_plugin, synthetic_face_image
from facegate.testing._conformance import conformance_policy

STAMPS = {"purpose": "access_control", "retention_days": 30, "location": "server", "model_id": "m1"}


@pytest.fixture
def nodes(backend):
    target = backend.target()
    with backend.open(target) as a, backend.open(target) as b:
        yield a, b


def _heard(node, other) -> None:
    """Let ``node`` hear ``other``'s last gallery change (PostgreSQL: its NOTIFY; SQLite: nothing to wait for)."""
    listener = getattr(node, "listener", None)
    if listener is not None:
        with other.reading() as conn:
            generation = int(conn.execute("SELECT value FROM meta WHERE key = 'gallery_generation'").fetchone()[0])
        assert listener.wait_for(generation, 30)


def _deaf(node) -> None:
    """Stop ``node`` hearing notifications (as if they were delayed): only the check against the
    database on a match can then keep an erased template out (PostgreSQL; SQLite has no listener)."""
    listener = getattr(node, "listener", None)
    if listener is not None:
        listener.stop()


def _people(unit, n=50):
    return {f"p{i}": unit() for i in range(n)}


def test_an_erase_on_one_node_is_honoured_by_the_next_identify_on_another(nodes, unit):
    a, b = nodes
    people = _people(unit)
    a.gallery.enroll_many([{"subject_id": s, "vector": v, "consent_id": None, **STAMPS} for s, v in people.items()])
    _heard(b, a)
    probe = people["p7"]
    assert b.gallery.identify(probe, threshold=0.9)[0].subject_id == "p7"  # b's matrix now holds p7
    assert b.gallery.count_subjects() == 50
    _deaf(b)
    assert a.gallery.erase_subject("p7") == 1
    # No waiting for any notification: the erase is committed, so b must not return p7 any more.
    assert [m.subject_id for m in b.gallery.identify(probe, threshold=0.2, k=50)].count("p7") == 0
    assert b.gallery.count_subjects() == 49
    assert b.gallery.verify("p7", probe, threshold=0.5) == (False, None)


def test_a_withdrawal_on_one_node_ends_matching_and_consent_on_another_at_once(nodes, unit):
    a, b = nodes
    v = unit()
    cid = a.consent.grant("alice", type="separate", given_by="subject", purposes=["access_control"])
    a.gallery.enroll("alice", v, consent_id=cid, **STAMPS)
    _heard(b, a)
    assert [m.subject_id for m in b.gallery.identify(v, threshold=0.9)] == ["alice"]
    _deaf(b)
    a.consent.withdraw("alice")  # withdrawn, not yet erased
    assert b.gallery.identify(v, threshold=0.5) == []
    assert b.consent.lookup("alice", "access_control")["withdrawn"] is True
    assert a.withdraw_consent(cid) == ([], 0) and a.gallery.purge_expired() == 1


def test_an_enrolment_on_one_node_reaches_the_others_matrix(nodes, unit):
    a, b = nodes
    first, second = unit(), unit()
    a.gallery.enroll("alice", first, consent_id=None, **STAMPS)
    _heard(b, a)
    assert [m.subject_id for m in b.gallery.identify(first, threshold=0.9)] == ["alice"]
    a.gallery.enroll("bob", second, consent_id=None, **STAMPS)
    _heard(b, a)
    assert [m.subject_id for m in b.gallery.identify(second, threshold=0.9)] == ["bob"]
    assert b.gallery.count_subjects() == 2


def test_the_next_decision_on_another_gate_honours_a_withdrawal(nodes):
    a, b = nodes
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    gate_b = Gate(conformance_policy(), "fake", registry=registry, store=b, consent_mode="registry-only")
    request = {"operation": "detect", "purpose": "attendance", "subject": {"id": "carol"}}
    a.consent.grant("carol", type="separate", given_by="subject", purposes=["attendance"])
    before = gate_b.process(request, synthetic_face_image())
    a.consent.withdraw("carol")
    after = gate_b.process(request, synthetic_face_image())
    decided = {r["record"]["decision_id"]: r["record"]["request"] for r in a.audit.query(kind="decision")}
    assert decided[before.decision.decision_id]["consent"]["withdrawn"] is False  # node a's grant was seen
    assert decided[after.decision.decision_id]["consent"]["withdrawn"] is True


def test_identify_never_returns_a_template_erased_on_another_node_while_it_runs(nodes, unit):
    """Erase on a, identify on b in a loop: once ``erase_subject`` has returned, no later identify
    that started after it may return the subject (checked for every subject erased)."""
    import threading

    a, b = nodes
    people = _people(unit, 40)
    a.gallery.enroll_many([{"subject_id": s, "vector": v, "consent_id": None, **STAMPS} for s, v in people.items()])
    _heard(b, a)
    for v in people.values():
        b.gallery.identify(v, threshold=0.9)
    _deaf(b)
    erased_at: dict[str, int] = {}
    clock = [0]
    lock = threading.Lock()
    violations: list[str] = []
    done = threading.Event()

    def identify_loop() -> None:
        names = list(people)
        i = 0
        while not done.is_set():
            subject = names[i % len(names)]
            with lock:
                started = clock[0]
            got = [m.subject_id for m in b.gallery.identify(people[subject], threshold=0.9)]
            with lock:
                if subject in got and subject in erased_at and erased_at[subject] <= started:
                    violations.append(subject)
            i += 1

    worker = threading.Thread(target=identify_loop)
    worker.start()
    for subject in list(people)[::2]:
        a.gallery.erase_subject(subject)
        with lock:
            clock[0] += 1
            erased_at[subject] = clock[0]
    done.set()
    worker.join()
    assert violations == []
    assert np.all([b.gallery.identify(people[s], threshold=0.9) == [] for s in list(people)[::2]])


def _counting_loads(node, monkeypatch) -> list[str]:
    loads: list[str] = []
    real = node.gallery._load

    def load(model_id: str):
        loads.append(model_id)
        return real(model_id)

    monkeypatch.setattr(node.gallery, "_load", load)
    return loads


@pytest.fixture
def pg_target(pg_server) -> str:
    """A fresh PostgreSQL database (SQLite processes reload the matrix after another's change)."""
    import uuid

    return pg_server.create_database(f"n_{uuid.uuid4().hex[:12]}")


def test_another_nodes_changes_are_applied_to_the_matrix_without_a_reload(pg_target, unit, monkeypatch):
    """PostgreSQL: enrolments, erasures and withdrawals on node A reach node B's loaded matrix in
    place (from ``gallery_change``); B's identify and subject count are right and B never reloads."""
    with open_store(pg_target) as a, open_store(pg_target) as b:
        people = _people(unit, 20)
        a.gallery.enroll_many([{"subject_id": s, "vector": v, "consent_id": None, **STAMPS} for s, v in people.items()])
        cid = a.consent.grant("carol", type="separate", given_by="subject", purposes=["access_control"])
        carol = unit()
        a.gallery.enroll("carol", carol, consent_id=cid, **STAMPS)
        _heard(b, a)
        assert b.gallery.identify(people["p3"], threshold=0.9)[0].subject_id == "p3"
        loads = _counting_loads(b, monkeypatch)
        dave = unit()
        a.gallery.enroll("dave", dave, consent_id=None, **STAMPS)      # add
        assert a.gallery.erase_subject("p3") == 1                       # remove
        a.consent.withdraw("carol")                                     # restrict
        _heard(b, a)
        assert [m.subject_id for m in b.gallery.identify(dave, threshold=0.9)] == ["dave"]
        assert b.gallery.identify(people["p3"], threshold=0.9) == []
        assert b.gallery.identify(carol, threshold=0.9) == []
        assert b.gallery.count_subjects() == a.gallery.count_subjects() == 21  # 19 + carol (withdrawn, not erased) + dave
        assert loads == []  # all of it applied in place
        # B's own view agrees with a fresh load of the database, row for row.
        with open_store(pg_target) as c:
            for probe in (*people.values(), dave, carol):
                assert ([m.template_id for m in b.gallery.identify(probe, threshold=0.2, k=30)]
                        == [m.template_id for m in c.gallery.identify(probe, threshold=0.2, k=30)])


def test_a_node_too_far_behind_the_change_records_reloads(pg_target, unit, monkeypatch):
    with open_store(pg_target) as a, open_store(pg_target) as b:
        first, second = unit(), unit()
        a.gallery.enroll("alice", first, consent_id=None, **STAMPS)
        _heard(b, a)
        assert b.gallery.identify(first, threshold=0.9)[0].subject_id == "alice"
        loads = _counting_loads(b, monkeypatch)
        a.gallery.enroll("bob", second, consent_id=None, **STAMPS)
        with psycopg.connect(pg_target, autocommit=True) as conn:  # as if more than CHANGES_KEPT generations had passed
            conn.execute("DELETE FROM gallery_change")
        _heard(b, a)
        assert [m.subject_id for m in b.gallery.identify(second, threshold=0.9)] == ["bob"]
        assert loads == ["m1"]
