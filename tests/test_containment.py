"""Containment: each attack a vendor plugin could make, reproduced; the default gate must stop it.

Every recognizer here is one of ``facegate.testing``'s hostile ones, run through the gate with its
default isolation (confined worker processes).  Where an attack happens off the call path (a
thread, a finalizer), the plugin reports on its next call whether its attempt was refused, so a
passing test shows the attempt was made and failed -- not that it never ran.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from facegate import ConfigError, Gate, PluginError
from facegate._plugins import load_registry
from facegate.recognition import Face
from facegate.store import SQLiteStore
from facegate.testing import MemoryAudit, fake_info, fake_plugin, hostile_plugin, synthetic_face_image
from facegate.testing._conformance import conformance_policy
from facegate.testing._hostile import UNDECLARED_SIZE, mutating_observer_plugin

DETECT = {"operation": "detect", "purpose": "other"}


@pytest.fixture(scope="module")
def registry():
    return load_registry((), extra=[("hostile", hostile_plugin())])


@pytest.fixture(scope="module")
def policy():
    return conformance_policy()


def _gate(policy, registry, rid, **kw):
    return Gate(policy, rid, registry=registry, audit=kw.pop("audit", None) or MemoryAudit(), **kw)


def _leaks(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("facegate-") and p.stat().st_size > 0)


def test_a_thread_writing_after_the_call_returns_is_refused(policy, registry, tmp_path):
    with _gate(policy, registry, "hostile-writes-later", recognizer_config={"target": str(tmp_path)}) as gate:
        first = gate.process(DETECT, synthetic_face_image(1))
        second = gate.process(DETECT, synthetic_face_image(1))
    assert _leaks(tmp_path) == []
    outcomes = [first, second]
    # the attempt was made, refused, and reported: whichever request it fell into ends in an error
    assert any(o.status == "error" and o.error_code == "sandbox_violation" for o in outcomes), [(o.status, o.error) for o in outcomes]
    assert all(o.result is None for o in outcomes if o.status == "error")


def test_a_file_opened_for_writing_in_init_stops_the_worker_from_starting(policy, registry, tmp_path):
    with pytest.raises(ConfigError, match="open for writing"):
        _gate(policy, registry, "hostile-fd-from-init", recognizer_config={"target": str(tmp_path)})
    assert _leaks(tmp_path) == []


def test_sqlite_connect_cannot_store_the_image(policy, registry, tmp_path):
    with _gate(policy, registry, "hostile-sqlite", recognizer_config={"target": str(tmp_path)}) as gate:
        out = gate.process(DETECT, synthetic_face_image(2))
    assert not (tmp_path / "facegate-leak.db").exists()
    assert out.status == "error" and out.error_code == "sandbox_violation" and out.result is None


def test_a_finalizer_of_a_returned_object_cannot_write_the_image(policy, registry, tmp_path):
    import gc

    with _gate(policy, registry, "hostile-del", recognizer_config={"target": str(tmp_path)}) as gate:
        first = gate.process(DETECT, synthetic_face_image(3))
        gc.collect()  # nothing of the plugin's reached this process; if it had, its __del__ would run now
        assert _leaks(tmp_path) == []
        assert first.status == "error" and first.error_code == "sandbox_violation", (first.status, first.error)
        assert first.result is None


def test_a_socket_opened_in_init_never_carries_an_image(policy, registry):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.setblocking(False)
        with pytest.raises(ConfigError, match="failed to start: PermissionError"):
            _gate(policy, registry, "hostile-socket-from-init", recognizer_config={"port": server.getsockname()[1]})
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody ever connected


def test_a_socket_opened_during_a_call_is_refused(policy, registry):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.setblocking(False)
        with _gate(policy, registry, "hostile-exfiltrates", recognizer_config={"port": server.getsockname()[1]}) as gate:
            out = gate.process(DETECT, synthetic_face_image(4))
        with pytest.raises(BlockingIOError):
            server.accept()
    assert out.status == "error" and out.result is None


def test_files_cannot_be_truncated_or_deleted(policy, registry, tmp_path):
    keep, other = tmp_path / "ledger.txt", tmp_path / "evidence.txt"
    keep.write_text("important")
    other.write_text("also important")
    with _gate(policy, registry, "hostile-vandal", recognizer_config={"victims": [str(keep), str(other)]}) as gate:
        out = gate.process(DETECT, synthetic_face_image(5))
    assert keep.read_text() == "important" and other.read_text() == "also important"
    assert out.status == "error" and out.error_code == "sandbox_violation"


def test_the_store_cannot_be_found_through_the_garbage_collector(policy, registry, tmp_path):
    fake = load_registry((), extra=[("fakes", fake_plugin(fake_info())), ("hostile", hostile_plugin())])
    with SQLiteStore(tmp_path / "fg.db") as store:
        enroll = {"operation": "enroll", "purpose": "attendance", "subject": {"id": "victim"}, "storage": {"retention_days": 5}}
        assert Gate(policy, "fake", registry=fake, store=store).process(enroll, synthetic_face_image(6)).status == "executed"
        before = store.audit.verify().checked
        gate = Gate(policy, "hostile-store-walker", registry=registry, store=store)
        out = gate.process(DETECT, synthetic_face_image(7))
        gate.close()
        assert out.status == "executed" and out.result.faces[0].score == pytest.approx(0.99)  # it found no gate
        assert store.gallery.count_subjects() == 1
        records = list(store.audit.query())
        assert not any(r["record"].get("decision_id") == "forged" for r in records)
        assert store.audit.verify().ok and store.audit.verify().checked == before + 2


def test_a_face_subclass_smuggles_nothing_to_the_caller(policy, registry):
    with _gate(policy, registry, "hostile-face-smuggler") as gate:
        out = gate.process(DETECT, synthetic_face_image(8))
    assert out.status == "executed"
    face = out.result.faces[0]
    assert type(face) is Face
    for name in ("embedding", "crop", "ethnicity"):
        assert not hasattr(face, name)
    assert any("dropped 3 field(s)" in n for n in out.notes), out.notes
    assert "ethnicity" not in json.dumps(out.to_dict())


def test_an_image_sized_exception_message_is_cut_and_masked(policy, registry):
    audit = MemoryAudit()
    image = synthetic_face_image(9)
    with _gate(policy, registry, "hostile-hex-error", audit=audit) as gate:
        out = gate.process(DETECT, image)
    assert out.status == "error" and out.error_code == "recognizer_failed"
    assert len(out.error) <= 160 and "RuntimeError" in out.error
    logged = json.dumps(audit.records)
    assert image.tobytes()[: 8 * 3].hex()[:16] not in logged
    assert len(logged) < 4000
    assert audit.records[-1]["error_code"] == "recognizer_failed"


def test_a_recognizer_without_embedding_size_is_refused_at_registration():
    with pytest.raises(PluginError, match="embedding_size must be declared"):
        load_registry((), extra=[("undeclared", fake_plugin(UNDECLARED_SIZE))])


def test_pixels_returned_as_an_embedding_are_never_stored(policy, registry, tmp_path):
    with SQLiteStore(tmp_path / "fg.db") as store:
        gate = Gate(policy, "hostile-pixels", registry=registry, store=store)
        out = gate.process({"operation": "enroll", "purpose": "attendance", "subject": {"id": "p"}, "storage": {"retention_days": 5}},
                           synthetic_face_image(10))
        gate.close()
        assert out.status == "error" and out.error_code == "recognizer_malformed" and "declared 64" in out.error
        assert store.gallery.count_subjects() == 0


def test_an_observer_editing_its_record_cannot_change_what_executes(policy):
    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info())), ("observer", mutating_observer_plugin())])
    audit = MemoryAudit()  # no `mask`: the observer would get the gate's own record if it were not copied
    with Gate(policy, "fake", registry=registry, audit=audit) as gate:
        out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(11), reference=synthetic_face_image(11))
    assert out.status == "executed" and type(out.result).__name__ == "VerifyResult"
    assert [r["request"]["operation"] for r in audit.records if r["kind"] == "decision"] == ["verify"]
    assert audit.records[-1]["operation"] == "verify"


def test_a_hung_call_kills_the_worker_and_a_fresh_one_serves_the_next_request(policy, registry):
    with _gate(policy, registry, "hostile-hangs", timeout=0.3) as gate:
        before = set(gate._pool.pids())
        out = gate.process(DETECT, synthetic_face_image(12))
        assert out.status == "error" and out.error_code == "recognizer_timeout" and out.result is None
        assert "timeout" in out.error
        again = gate.process(DETECT, synthetic_face_image(12))  # a fresh worker: it hangs too, but it ran
        assert again.error_code == "recognizer_timeout"
        assert not before & set(gate._pool.pids())


def test_cpu_per_call_is_limited(policy, registry):
    with _gate(policy, registry, "hostile-burns-cpu", timeout=30, cpu_seconds=1) as gate:
        out = gate.process(DETECT, synthetic_face_image(13))
    assert out.status == "error" and out.error_code == "worker_died" and "SIGXCPU" in out.error


def test_memory_is_limited(policy, registry):
    with _gate(policy, registry, "hostile-hoards", memory_mb=1024) as gate:
        out = gate.process(DETECT, synthetic_face_image(14))
    assert out.status == "error" and out.error_code == "recognizer_failed" and "MemoryError" in out.error


def test_a_plugin_that_switches_off_its_confinement_is_refused(policy, registry):
    with pytest.raises(ConfigError, match="not confined.*1 seccomp filter"):
        _gate(policy, registry, "hostile-unconfines")


def test_every_outcome_record_states_the_confinement_in_force(policy, registry):
    audit = MemoryAudit()
    fake = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    with Gate(policy, "fake", registry=fake, audit=audit) as gate:
        gate.process(DETECT, synthetic_face_image())
    with Gate(policy, "fake", registry=fake, audit=audit, isolation="none") as trusted:
        trusted.process(DETECT, synthetic_face_image())
    confined, in_process = [r["confinement"] for r in audit.records if r["kind"] == "outcome"]
    assert confined["confined"] and confined["no_new_privs"] and confined["seccomp_filters"] == 2 and confined["isolation"] == "process"
    assert in_process == {**in_process, "isolation": "none", "confined": False}


def test_the_callers_image_is_never_written_and_no_shared_memory_is_left(policy, registry):
    import os

    fake = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    image = synthetic_face_image(15)
    copy = image.copy()
    with Gate(policy, "fake", registry=fake, audit=MemoryAudit()) as gate:
        assert gate.process(DETECT, image).status == "executed"
    assert np.array_equal(image, copy)
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"facegate-{os.getpid()}-")]


def test_the_plugins_command_states_the_confinement_in_force(capsys, tmp_path):
    from facegate.cli import main

    assert main(["plugins", "--allow", "onnx", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    confinement = rows["onnx"]["recognizers"][0]["confinement"]
    assert rows["onnx"]["recognizers"][0]["isolation"] == "required"
    assert confinement["confined"] and confinement["seccomp_filters"] == 2 and confinement["no_new_privs"]
    assert main(["plugins", "--allow", "onnx"]) == 0
    assert "isolation required: recognizers run confined worker process: no_new_privs; seccomp" in capsys.readouterr().out
    (tmp_path / "c.yaml").write_text("policy: x\nrecognizer: {id: onnx, isolation: none}\nplugins: {allow: [onnx]}\n")
    assert main(["plugins", "--config", str(tmp_path / "c.yaml")]) == 0
    assert "isolation none: recognizers run in-process, unconfined (isolation none: trusted code only)" in capsys.readouterr().out


def test_the_configuration_chooses_isolation_workers_and_limits(tmp_path):
    from fg_paths import EXAMPLE

    config = {"policy": str(EXAMPLE), "plugins": {"allow": ["onnx"]}, "store": {"path": str(tmp_path / "fg.db")},
              "recognizer": {"id": "onnx", "isolation": "required", "workers": 2, "limits": {"memory_mb": 2048, "cpu_seconds_per_call": 5}}}
    with Gate.from_config(config) as gate:
        assert gate.confinement.confined and gate.confinement.memory_mb == 2048 and gate.confinement.cpu_seconds_per_call == 5
        assert gate._pool.spec.size == 2
    with Gate.from_config({**config, "recognizer": {"id": "onnx", "isolation": "none"}}) as trusted:
        assert trusted.confinement.to_dict()["isolation"] == "none" and not trusted.confinement.confined
    with pytest.raises(ConfigError, match="isolation"):
        Gate.from_config({**config, "recognizer": {"id": "onnx", "isolation": "sometimes"}})
    with pytest.raises(ConfigError, match="workers"):
        Gate.from_config({**config, "recognizer": {"id": "onnx", "workers": 0}})


def test_the_worker_environment_carries_no_credentials(policy, registry, monkeypatch):
    monkeypatch.setenv("FACEGATE_DB_PASSWORD", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with _gate(policy, registry, "hostile-env-snoop") as gate:
        out = gate.process(DETECT, synthetic_face_image(16))
    assert out.status == "executed" and out.result.faces[0].score == pytest.approx(0.99)
    with _gate(policy, registry, "hostile-env-snoop", isolation="none") as trusted:  # the same plugin in-process sees them
        assert trusted.process(DETECT, synthetic_face_image(16)).result.faces[0].score == pytest.approx(0.25)


def test_a_pool_of_two_workers_serves_concurrent_requests(policy):
    import threading

    fake = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    audit = MemoryAudit()
    outcomes = []
    with Gate(policy, "fake", registry=fake, audit=audit, workers=2) as gate:
        start = threading.Barrier(4)

        def client(seed):
            start.wait()
            for _ in range(5):
                outcomes.append(gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(seed),
                                             reference=synthetic_face_image(seed)))

        threads = [threading.Thread(target=client, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(gate._pool.pids())) <= 2
    assert len(outcomes) == 20 and all(o.status == "executed" and o.result.same_person for o in outcomes)
    assert len(audit.records) == 40
