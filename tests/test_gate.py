"""The gate: only approved operations execute, and hostile recognizers are contained."""

from __future__ import annotations

import dataclasses
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from facegate import ConfigError, Gate
from facegate._plugins import load_registry
from facegate.testing import HOSTILE, MemoryAudit, fake_info, fake_plugin, hostile_plugin, run_hostile_suite, synthetic_face_image
from facegate.testing._conformance import conformance_policy


class CountingRecognizer:
    calls: list[str] = []

    def __init__(self, config):
        from facegate.testing import FakeRecognizer

        self.inner = FakeRecognizer(config)

    def detect(self, image):
        CountingRecognizer.calls.append("detect")
        return self.inner.detect(image)

    def embed(self, image, face):
        CountingRecognizer.calls.append("embed")
        return self.inner.embed(image, face)

    def analyze(self, image, face, attributes):
        CountingRecognizer.calls.append("analyze")
        return self.inner.analyze(image, face, attributes)


@pytest.fixture
def registry():
    return load_registry((), extra=[("fakes", fake_plugin(fake_info(), fake_info("counting", factory=CountingRecognizer))), ("hostile", hostile_plugin())])


@pytest.fixture
def audit():
    return MemoryAudit()


PERMIT = {"operation": "detect", "purpose": "payment", "subject": {"age": 30}, "consent": {"type": "separate", "purposes": ["payment"]}}


def test_denied_request_never_reaches_the_recognizer(example_policy, registry, audit):
    CountingRecognizer.calls.clear()
    gate = Gate(example_policy, "counting", registry=registry, audit=audit, isolation="none")  # calls are counted here
    out = gate.process({**PERMIT, "place": {"type": "private_space"}}, synthetic_face_image())
    assert out.status == "denied" and out.result is None and not out.permitted
    assert CountingRecognizer.calls == []
    assert [r["kind"] for r in audit.records] == ["decision", "outcome"]
    assert audit.records[1]["outcome"] == "not_executed"


def test_permitted_detect_runs_exactly_detect_and_audits_first(example_policy, registry, audit):
    CountingRecognizer.calls.clear()
    gate = Gate(example_policy, "counting", registry=registry, audit=audit, isolation="none")  # calls are counted here
    out = gate.process(PERMIT, synthetic_face_image(faces=2))
    assert out.status == "executed" and len(out.result.faces) == 2
    assert CountingRecognizer.calls == ["detect"]
    assert audit.records[0]["kind"] == "decision" and audit.records[0]["effect"] == "permit"
    assert audit.records[1]["outcome"] == "executed"
    assert {o["type"] for o in out.enforced} == {"discard_raw_image", "retention_max_days"}


def test_audit_failure_denies_and_executes_nothing(example_policy, registry, audit):
    CountingRecognizer.calls.clear()
    audit.fail = OSError("disk full")
    out = Gate(example_policy, "counting", registry=registry, audit=audit).process(PERMIT, synthetic_face_image())
    assert out.status == "denied" and out.decision.effect == "deny" and out.decision.reason == "audit_unavailable"
    assert "disk full" in out.error and CountingRecognizer.calls == []


def test_verify_with_reference_same_and_different(registry, audit):
    gate = Gate(conformance_policy(), "fake", registry=registry, audit=audit)
    same = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(3), reference=synthetic_face_image(3))
    other = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(3), reference=synthetic_face_image(4))
    assert same.result.same_person and same.result.score == pytest.approx(1.0, abs=1e-5)
    assert not other.result.same_person


def test_analyze_only_returns_approved_attributes(registry, audit):
    gate = Gate(conformance_policy(), "hostile-extra-attributes", registry=registry, audit=audit)
    out = gate.process({"operation": "analyze", "attributes": ["age"], "purpose": "other"}, synthetic_face_image())
    assert out.status == "executed"
    assert [set(f.attributes) for f in out.result.faces] == [{"age"}]
    assert any("ethnicity" in n for n in out.notes)
    assert "inferred" not in str(audit.records)  # the dropped values are recorded nowhere


def test_analyze_beyond_capabilities_is_refused(registry, audit):
    gate = Gate(conformance_policy(), "fake", registry=registry, audit=audit)
    out = gate.process({"operation": "analyze", "attributes": ["ethnicity"], "purpose": "other"}, synthetic_face_image())
    assert out.status == "error" and "cannot analyze ['ethnicity']" in out.error and out.result is None


@pytest.mark.parametrize("rid", ["hostile-keeps-image", "hostile-writes-image", "hostile-exfiltrates", "hostile-raises", "hostile-malformed",
                                 "hostile-lies", "hostile-sqlite", "hostile-del", "hostile-hex-error"])
def test_each_hostile_recognizer_gives_an_error_outcome(registry, audit, rid):
    gate = Gate(conformance_policy(), rid, registry=registry, audit=audit)
    req = {"operation": "analyze", "attributes": ["age"], "purpose": "other"} if rid == "hostile-lies" else {"operation": "detect", "purpose": "other"}
    out = gate.process(req, synthetic_face_image())
    assert out.status == "error" and out.result is None, out
    assert audit.records[-1]["outcome"] == "error"


def test_writes_are_blocked_even_when_the_refusal_is_swallowed(registry, audit, tmp_path):
    import tempfile

    leak = Path(tempfile.gettempdir()) / "facegate-hostile-leak.npy"
    leak.unlink(missing_ok=True)
    out = Gate(conformance_policy(), "hostile-writes-image", registry=registry, audit=audit).process({"operation": "detect", "purpose": "other"}, synthetic_face_image())
    assert out.status == "error" and "for writing" in out.error
    assert not leak.exists()


def test_hostile_suite_passes(registry):
    report = run_hostile_suite(lambda rid, config: Gate(conformance_policy(), rid, registry=registry, recognizer_config=config,
                                                        audit=MemoryAudit(), timeout=0.5))
    report.assert_ok()
    named = {name.split(":")[0] for name, _, _ in report.checks}
    assert set(HOSTILE) - {"hostile-burns-cpu", "hostile-hoards", "hostile-extra-attributes"} <= named  # tested in test_containment


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")  # what the plugins leak in-process
def test_hostile_suite_reports_what_an_in_process_gate_does_not_contain(registry):
    report = run_hostile_suite(lambda rid, config: Gate(conformance_policy(), rid, registry=registry, recognizer_config=config,
                                                        audit=MemoryAudit(), timeout=0.5, isolation="none"))
    failed = {name.split(":")[0] for name, ok, _ in report.checks if not ok}
    assert {"hostile-writes-later", "hostile-vandal", "hostile-fd-from-init", "hostile-socket-from-init", "hostile-store-walker",
            "no image reached the disk", "no file was truncated or deleted"} <= failed


def test_gate_keeps_no_reference_to_the_image(registry, audit):
    gate = Gate(conformance_policy(), "fake", registry=registry, audit=audit)
    image = synthetic_face_image()
    ref = weakref.ref(image)
    out = gate.process({"operation": "detect", "purpose": "other"}, image)
    assert out.status == "executed"
    del image
    gc.collect()
    assert ref() is None


def test_callers_image_is_never_modified(registry, audit):
    gate = Gate(conformance_policy(), "fake", registry=registry, audit=audit)
    image = synthetic_face_image()
    before = image.copy()
    gate.process({"operation": "detect", "purpose": "other"}, image)
    assert np.array_equal(image, before) and image.flags.writeable


@pytest.mark.parametrize("bad", [None, np.zeros((4, 4, 3), np.uint8), np.zeros((20, 20, 3), np.float32), "image.jpg"])
def test_bad_images_give_error_outcomes(registry, audit, bad):
    out = Gate(conformance_policy(), "fake", registry=registry, audit=audit).process({"operation": "detect", "purpose": "other"}, bad)
    assert out.status == "error" and out.result is None


def test_grayscale_is_accepted(registry, audit):
    img = synthetic_face_image()[:, :, 0]
    out = Gate(conformance_policy(), "fake", registry=registry, audit=audit).process({"operation": "detect", "purpose": "other"}, img)
    assert out.status == "executed" and len(out.result.faces) == 1


def test_invalid_request_is_denied_and_audited(registry, audit):
    out = Gate(conformance_policy(), "fake", registry=registry, audit=audit).process({"operation": "detect", "purpose": "other", "consnet": 1}, synthetic_face_image())
    assert out.status == "denied" and out.decision.reason == "invalid_request"
    assert audit.records[0]["violations"][0]["pointer"] == "/consnet"


def test_failing_observer_changes_nothing(registry, audit):
    import types

    from facegate import hookimpl

    @hookimpl
    def record_decision(record):
        raise RuntimeError("observer down")

    observer = types.ModuleType("observer")
    observer.record_decision = record_decision
    registry.add(observer, "observer")
    out = Gate(conformance_policy(), "fake", registry=registry, audit=audit).process({"operation": "detect", "purpose": "other"}, synthetic_face_image())
    assert out.status == "executed"


def test_config_errors(example_policy, registry, audit):
    with pytest.raises(ConfigError, match="not registered"):
        Gate(example_policy, "nope", registry=registry, audit=audit)
    with pytest.raises(ConfigError, match="needs an audit log"):
        Gate(example_policy, "fake", registry=registry)
    with pytest.raises(ConfigError, match="config at /embedding_size"):
        Gate(example_policy, "fake", registry=registry, audit=audit, recognizer_config={"embedding_size": "big"})
    with pytest.raises(ConfigError, match="consent mode"):
        Gate(example_policy, "fake", registry=registry, audit=audit, consent_mode="registry-only")


def test_outcome_to_dict_is_json(registry, audit):
    import json

    out = Gate(conformance_policy(), "fake", registry=registry, audit=audit).process({"operation": "detect", "purpose": "other"}, synthetic_face_image())
    assert json.loads(json.dumps(out.to_dict()))["result"]["faces"][0]["score"] == pytest.approx(0.99)


class BrokenStore:
    class consent:  # noqa: N801 - a stand-in store part
        @staticmethod
        def lookup(subject_id, purpose=None, at=None):
            raise OSError("registry offline")

    gallery = None

    def __init__(self):
        self.audit = MemoryAudit()


def test_evidence_failure_denies(registry):
    store = BrokenStore()
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store, consent_mode="registry-overrides")
    out = gate.process({"operation": "detect", "purpose": "other", "subject": {"id": "s1"}}, synthetic_face_image())
    assert out.status == "denied" and out.decision.reason == "evidence_unavailable"
    assert "registry offline" in out.decision.errors[-1]["error"]


class FailingGallery:
    def count_subjects(self):
        return 0

    def enroll(self, *a, **k):
        raise OSError("disk full")


def test_store_failure_during_execution_is_an_error_outcome(registry, audit):
    store = type("S", (), {"audit": audit, "gallery": FailingGallery(), "consent": None})()
    gate = Gate(conformance_policy(), "fake", registry=registry, store=store)
    req = {"operation": "enroll", "purpose": "other", "subject": {"id": "s1"}, "storage": {"retention_days": 30}}
    out = gate.process(req, synthetic_face_image())
    assert out.status == "error" and "disk full" in out.error and out.result is None
    out = gate.process({**req, "storage": {}}, synthetic_face_image())
    assert out.status == "error" and "retention period" in out.error


class ThreadRecorder:
    """Records which thread runs each call and keeps a weak reference to every image it is shown."""

    def __init__(self, config):
        from facegate.testing import FakeRecognizer

        self.inner = FakeRecognizer(config)
        self.threads: list[int] = []
        self.seen: list[weakref.ref] = []

    def detect(self, image):
        import threading

        self.threads.append(threading.get_ident())
        self.seen.append(weakref.ref(image))
        return self.inner.detect(image)

    def embed(self, image, face):
        import threading

        self.threads.append(threading.get_ident())
        return self.inner.embed(image, face)


def test_in_process_verify_runs_in_one_hand_off_and_wipes_every_copy(registry, audit, monkeypatch):
    import threading

    from facegate.gate import _worker

    wiped: list[bool] = []
    real = _worker._wipe
    monkeypatch.setattr(_worker, "_wipe", lambda buffer: (real(buffer), wiped.append(not buffer.any())))
    gate = Gate(conformance_policy(), "fake", registry=registry, audit=audit, isolation="none")
    gate._runner.recognizer = recorder = ThreadRecorder({})
    out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(3), reference=synthetic_face_image(3))
    assert out.status == "executed" and out.result.same_person
    assert len(recorder.threads) == 4 and len(set(recorder.threads)) == 1  # detect, embed, detect, embed: one worker
    assert recorder.threads[0] != threading.get_ident()
    assert wiped == [True, True]  # both private copies zeroed
    assert all(ref() is None for ref in recorder.seen)  # and released


def test_isolated_images_cross_in_shared_memory_that_is_zeroed_and_unlinked(registry, audit, monkeypatch):
    import os

    from facegate.gate import _arena

    seen: list[tuple[str, bool, bool, int]] = []
    real = _arena.Arena.wipe

    def wipe(self):
        written = bytes(self._bytes[: self.used]) if self._bytes is not None else b""
        real(self)
        seen.append((self.path, os.path.exists(self.path), not self._bytes.any(), sum(written) > 0))

    monkeypatch.setattr(_arena.Arena, "wipe", wipe)
    with Gate(conformance_policy(), "fake", registry=registry, audit=audit, memory_mb=3001) as gate:  # a pool of its own
        pool = gate._pool
        for seed in (3, 4):
            out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(seed), reference=synthetic_face_image(seed))
            assert out.status == "executed" and out.result.same_person
        worker = gate._pool._idle[0]
        arena = worker.arena
        with open(f"/proc/{worker.proc.pid}/maps", encoding="utf-8") as fh:
            shared = [line for line in fh if arena.path in line]
        assert shared == []  # the worker maps its arena only while it serves a request
        with os.scandir(f"/proc/{worker.proc.pid}/fd") as fds:
            held = [os.readlink(f.path) for f in fds]
        assert f"{arena.path} (deleted)" in held  # one arena, kept open read-only by the worker and unlinked
    # both requests' images went through one arena: each time they were there, then zeroed, and its name was gone
    ours = [s for s in seen if s[0] == arena.path]  # (closing the gate may close an older spare pool: other arenas)
    assert len(ours) == 2 and all(s[1:] == (False, True, True) for s in ours)
    assert not arena.closed and not arena._bytes.any()  # the gate is closed; its pool stays warm for a while, holding zeros
    pool.close()
    assert arena.closed  # closing the pool stops the worker and unmaps its arena


def test_images_are_staged_while_the_decision_record_commits_and_sent_only_after(registry, monkeypatch):
    import threading

    from facegate.gate import _arena, _worker

    events: list[str] = []
    loaded = threading.Event()
    real_load, real_call = _arena.Arena.load, _worker.Worker.call

    def load(self, images):
        layout = real_load(self, images)
        events.append(f"images staged ({bool(self._bytes[: self.used].any())})")
        loaded.set()
        return layout

    def call(self, request, timeout):
        events.append("request sent")
        return real_call(self, request, timeout)

    class WaitingAudit(MemoryAudit):
        def append(self, record):
            if record["kind"] == "decision":  # the staging runs beside this commit, on a helper thread
                events.append(f"commit starts (staged meanwhile: {loaded.wait(30)})")
            n = super().append(record)
            events.append(f"{record['kind']} record durable")
            return n

    monkeypatch.setattr(_arena.Arena, "load", load)
    monkeypatch.setattr(_worker.Worker, "call", call)
    with Gate(conformance_policy(), "fake", registry=registry, audit=WaitingAudit()) as gate:
        out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(5), reference=synthetic_face_image(5))
    assert out.status == "executed" and out.result.same_person
    assert events == ["images staged (True)", "commit starts (staged meanwhile: True)", "decision record durable", "request sent",
                      "outcome record durable"]


def test_a_failed_decision_commit_discards_the_staged_images_and_their_worker(registry, audit):
    import os

    with Gate(conformance_policy(), "fake", registry=registry, audit=audit, memory_mb=3002) as gate:  # a pool of its own
        assert gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image(6)).status == "executed"
        (worker,) = gate._pool._idle
        arena = worker.arena
        audit.fail = OSError("disk full")
        out = gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image(6))
        assert out.status == "denied" and out.error_code == "audit_unavailable" and out.result is None
        # the worker could have read the staged image of a request that ends unrecorded: it is gone, the arena zeroed
        assert worker.proc.poll() is not None and arena.closed and not os.path.exists(arena.path)
        audit.fail = None
        assert gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image(6)).status == "executed"  # a fresh worker
        assert worker not in gate._pool._idle


def test_more_concurrent_requests_than_helper_threads_on_one_worker_all_finish(registry, audit):
    import threading
    import time

    from facegate.gate import _handoff

    outcomes: list[str] = []
    with Gate(conformance_policy(), "fake", registry=registry, audit=audit, workers=1) as gate:
        start = threading.Barrier(_handoff._helpers._max_workers + 8)

        def client():
            start.wait()
            outcomes.append(gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image(7)).status)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(start.parties)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120  # a stall is a failure, not a hang of the suite
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    # helpers only copy and release, never wait for a worker: none is stuck behind the requests it would release
    assert not any(t.is_alive() for t in threads) and outcomes == ["executed"] * start.parties


def test_denied_requests_copy_no_image(example_policy, registry, audit, monkeypatch):
    from facegate.gate import _arena, _worker

    made: list[object] = []
    monkeypatch.setattr(_arena.Arena, "load", lambda self, images: made.append(images))
    monkeypatch.setattr(_worker, "_private_copy", lambda image: made.append(image))
    image = synthetic_face_image()
    for isolation in ("required", "none"):
        with Gate(example_policy, "counting" if isolation == "none" else "fake", registry=registry, audit=audit, isolation=isolation) as gate:
            out = gate.process({**PERMIT, "place": {"type": "private_space"}}, image)
        assert out.status == "denied"
    assert made == [] and image.any()


def test_a_kept_image_withholds_the_result_and_replaces_the_worker(registry, audit):
    with Gate(conformance_policy(), "hostile-keeps-image", registry=registry, audit=audit) as gate:
        before = gate._pool.pids()
        out = gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image())
        assert out.status == "error" and out.result is None and "kept a reference" in out.error
        assert out.error_code == "image_kept" and any("wiped" in n for n in out.notes)
        assert gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image()).error_code == "image_kept"
        assert not set(before) & set(gate._pool.pids())


def test_in_process_kept_image_is_wiped_before_the_outcome_returns(registry, audit):
    gate = Gate(conformance_policy(), "hostile-keeps-image", registry=registry, audit=audit, isolation="none")
    out = gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image())
    assert out.status == "error" and out.result is None and "kept a reference" in out.error
    kept = gate._runner.recognizer.kept[-1]
    assert kept.size and not kept.any()  # a held copy is wiped before the result is handed back


def test_in_process_timeout_is_an_error_outcome(registry, audit):
    from facegate.testing._hostile import HANG

    gate = Gate(conformance_policy(), "hostile-hangs", registry=registry, audit=audit, timeout=0.2, isolation="none")
    HANG.clear()  # an earlier test may have released it
    try:
        out = gate.process({"operation": "detect", "purpose": "other"}, synthetic_face_image())
    finally:
        HANG.set()
    assert out.status == "error" and out.result is None and out.error_code == "recognizer_timeout"
    assert "exceeded its 0.2 s timeout" in out.error


@pytest.fixture(scope="module")
def fixed_registry():
    from fg_recognizers import FixedEmbedding

    info = fake_info("fixed", factory=FixedEmbedding, embedding_size=3)
    return load_registry((), extra=[("fixed", fake_plugin(dataclasses.replace(info, config_schema={"type": "object"})))])


@pytest.mark.parametrize(("config", "problem"), [
    ({"values": [0.5, "nan", 0.1]}, "non-finite"),
    ({"values": [0.5, "inf", 0.1]}, "non-finite"),
    ({"values": [3e38, 3e38, 1.0]}, "non-finite"),  # finite, but its square overflows float32
    ({"values": [1e39, 1.0, 1.0]}, "non-finite"),  # finite in float64, too large for float32
    ({"values": [0.0, 0.0, 0.0]}, "zero embedding"),
    ({"values": [1, 2, 3], "dtype": "int64"}, "malformed"),  # integers
    ({"values": [0.0] * 6, "shape": [2, 3]}, "malformed"),
    ({"values": [0.1, 0.2, 0.3], "as_list": True}, "malformed"),
    ({"values": [0.1, 0.2]}, "declared 3"),  # not the declared size
])
@pytest.mark.parametrize("isolation", ["required", "none"])
def test_bad_embeddings_are_refused(audit, fixed_registry, config, problem, isolation):
    with Gate(conformance_policy(), "fixed", registry=fixed_registry, audit=audit, recognizer_config=config, isolation=isolation) as gate:
        out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(3), reference=synthetic_face_image(3))
    assert out.status == "error" and out.result is None and problem in out.error and out.error_code == "recognizer_malformed"


def test_embeddings_are_copied_and_normalised(audit, fixed_registry):
    config = {"values": [3.0, 4.0, 0.0], "dtype": "float16"}
    with Gate(conformance_policy(), "fixed", registry=fixed_registry, audit=audit, recognizer_config=config, isolation="none") as gate:
        out = gate.process({"operation": "verify", "purpose": "other"}, synthetic_face_image(3), reference=synthetic_face_image(3))
        assert out.status == "executed" and out.result.score == pytest.approx(1.0)
        assert gate._runner.recognizer.vector.tolist() == [3.0, 4.0, 0.0]  # the recognizer's array is not normalised in place


@pytest.mark.parametrize("span", [[0, 8], [0, 13], [8, 12], [-4, 12], [True, 12], [0.0, 12], [0, 12, 0], "0:12", None])
def test_embedding_bytes_from_a_worker_must_be_one_exact_span(span):
    from facegate.gate import _contract, _worker

    info = fake_info("fixed", embedding_size=3)
    raw = memoryview(np.asarray([3.0, 4.0, 0.0], "<f4").tobytes() + bytes(4))  # 16 bytes after the JSON

    def answer(f32):
        return {"images": [{"faces": [], "embedding": {"type": "ndarray", "dtype": "f", "ndim": 1, "size": 3, "f32": f32}}]}

    good = answer([0, 12])
    _worker._raw_in(good, raw)
    assert _contract.embedding(info, good["images"][0]["embedding"]).tolist() == pytest.approx([0.6, 0.8, 0.0])
    bad = answer(span)
    _worker._raw_in(bad, raw)
    with pytest.raises(_contract.Refused, match="malformed embedding"):
        _contract.embedding(info, bad["images"][0]["embedding"])


@pytest.mark.parametrize("request_", [{"operation": ["detect"]}, {"operation": {"op": "detect"}}, ["detect"], None, 42])
def test_malformed_requests_are_denied_not_raised(registry, audit, request_):
    out = Gate(conformance_policy(), "fake", registry=registry, audit=audit).process(request_, synthetic_face_image())
    assert out.status == "denied" and out.result is None and out.decision.reason == "invalid_request"
