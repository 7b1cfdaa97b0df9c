"""Faults survived, nothing lost: the database stopped under load, two gate processes on one store.

The PostgreSQL server is stopped while gate threads keep sending requests: from then on every
request is denied with ``audit_unavailable`` (nothing runs unlogged); when the server is back
the same gate, untouched, logs and executes again.  Two gate *processes* under load on one
store (both backends): every decision a caller got back as logged is in the one chain, which
verifies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from facegate import Gate
from facegate._plugins import load_registry
from facegate.store import open_store
from facegate.testing import fake_info, fake_plugin, synthetic_face_image
from facegate.testing._conformance import conformance_policy

REQUEST = {"operation": "detect", "purpose": "attendance", "subject": {"id": "visitor"}}
LOGGED = ("executed", "denied", "error")  # outcomes whose decision record was written (audit_unavailable aside)


def _gate(store):
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    return Gate(conformance_policy(), "fake", registry=registry, store=store)


def _unavailable(outcome) -> bool:
    return outcome.status == "denied" and outcome.decision.reason == "audit_unavailable"


@pytest.fixture
def own_server(pg_server):  # the session server is checked first: same binaries, same failure mode
    """A server of this test's own: it is stopped in the middle of the test."""
    from pgserver import PostgresServer

    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


def test_server_stopped_under_load_denies_with_audit_unavailable_then_recovers_by_itself(own_server):
    url = own_server.create_database("faults")
    image = synthetic_face_image()
    with open_store(url, timeout=1.0) as store:
        gate = _gate(store)
        outcomes: list = []
        lock = threading.Lock()
        phase = {"name": "up"}
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                name = phase["name"]
                out = gate.process(REQUEST, image)
                with lock:
                    outcomes.append((name, phase["name"], out))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        try:
            _until(lambda: sum(o.status == "executed" for _, _, o in outcomes) >= 20, "requests before the stop")
            own_server.stop("immediate")  # as a crash would: no clean shutdown
            phase["name"] = "down"
            _until(lambda: sum(p == "down" and _unavailable(o) for p, _, o in outcomes) >= 8, "denials while down")
            phase["name"] = "restarting"  # a call that ends after this may have reached the restarted server
            own_server.start()
            phase["name"] = "back"
            _until(lambda: sum(p == "back" and o.status == "executed" for p, _, o in outcomes) >= 20,
                   "recovery after the restart", seconds=120)
        finally:
            stop.set()
            for w in workers:
                w.join()
        down = [o for started, ended, o in outcomes if started == "down" and ended == "down"]
        assert down and all(_unavailable(o) for o in down), {o.status + "/" + o.decision.reason for o in down}
        logged = {o.decision.decision_id for _, _, o in outcomes if not _unavailable(o)}
        in_chain = {r["record"].get("decision_id") for r in store.audit.query(kind="decision")}
        assert logged <= in_chain  # every decision a caller saw logged is in the chain
        report = store.audit.verify()
        assert report.ok, report.problems


def _until(condition, what: str, seconds: float = 60.0) -> None:
    """Wait (polling, no timing asserted) until ``condition()``; fail naming ``what`` after ``seconds``."""
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        done.wait(0.05)
    pytest.fail(f"gave up waiting for {what}")


GATE_PROCESS = r"""
import json, sys, threading
from facegate import Gate
from facegate._plugins import load_registry
from facegate.store import open_store
from facegate.testing import fake_info, fake_plugin, synthetic_face_image
from facegate.testing._conformance import conformance_policy

store = open_store(sys.argv[1])
gate = Gate(conformance_policy(), "fake", registry=load_registry((), extra=[("fakes", fake_plugin(fake_info()))]), store=store)
image = synthetic_face_image()
seen, lock = [], threading.Lock()

def work(t):
    for i in range(int(sys.argv[3])):
        request = {"operation": "detect", "purpose": "attendance", "subject": {"id": f"{sys.argv[2]}-{t}-{i}"}}
        out = gate.process(request, image)
        with lock:
            seen.append([out.status, out.decision.reason, out.decision.decision_id])

threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
store.close()
print(json.dumps(seen))
"""


def test_two_gate_processes_on_one_store_log_every_decision_in_one_chain(backend):
    target = backend.target()
    open_store(target).close()
    each = 40
    procs = [subprocess.Popen([sys.executable, "-c", GATE_PROCESS, target, f"g{n}", str(each)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results += json.loads(out)
    assert len(results) == 2 * 8 * each
    assert all(status == "executed" for status, _, _ in results), {tuple(r[:2]) for r in results}
    with backend.open(target, readonly=True) as store:
        report = store.audit.verify()
        decisions = [r["record"]["decision_id"] for r in store.audit.query(kind="decision")]
        outcomes = [r["record"]["decision_id"] for r in store.audit.query(kind="outcome")]
    assert report.ok, report.problems
    assert sorted(decisions) == sorted(d for _, _, d in results)  # each exactly once
    assert sorted(outcomes) == sorted(d for _, _, d in results)


def test_a_batch_the_database_rejects_fails_its_callers_and_the_chain_goes_on(backend, make_decision):
    """The database refuses one insert (a trigger here; a constraint or a full disk in life): that
    batch is rolled back and its caller gets ``AuditWriteError``; the next append continues the chain."""
    from facegate.store import AuditWriteError

    target = backend.target()
    with backend.open(target) as store:
        store.audit.append(make_decision(1))
        with backend.raw(target) as conn:
            if backend.name == "postgresql":
                conn.execute("CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS "
                             "$$ BEGIN RAISE EXCEPTION 'poisoned record'; END $$")
                conn.execute("CREATE TRIGGER poison BEFORE INSERT ON audit_log FOR EACH ROW "
                             "WHEN (NEW.kind = 'poison') EXECUTE FUNCTION poison()")
            else:
                conn.execute("CREATE TRIGGER poison BEFORE INSERT ON audit_log WHEN NEW.kind = 'poison' "
                             "BEGIN SELECT RAISE(ABORT, 'poisoned record'); END")
        with pytest.raises(AuditWriteError, match="poisoned record"):
            store.audit.append({"kind": "poison", "time": "2025-06-01T08:00:00Z"})
        assert store.audit.append(make_decision(2)).seq == 2  # nothing of the rejected batch was kept
        assert store.audit.append_many([make_decision(3), make_decision(4)])[-1].seq == 4
        report = store.audit.verify()
    assert report.ok and report.checked == 4, report.problems
