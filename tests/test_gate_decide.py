"""``Gate.decide`` / ``Gate.decide_async``: the gate's evidence, the record written ahead, nothing run."""

from __future__ import annotations

import asyncio

import pytest

import facegate
from facegate import Gate
from facegate._plugins import load_registry
from facegate.store import AuditReceipt, SQLiteStore
from facegate.testing import MemoryAudit, fake_info, fake_plugin
from facegate.testing._conformance import conformance_policy
from fg_paths import EXAMPLE

DETECT = {"operation": "detect", "purpose": "attendance", "subject": {"id": "alice"}}
#: Permitted by the example pack only with separate consent for payment -- which registry-only mode takes from the registry.
VERIFY = {"operation": "verify", "purpose": "payment", "subject": {"id": "bob", "age": 30},
          "consent": {"type": "separate", "purposes": ["payment"]}}


class CountingRecognizer:
    calls = 0

    def __init__(self, config):
        CountingRecognizer.calls += 1  # built at all: the decide path must not even need it

    def detect(self, image):  # pragma: no cover - never reached
        raise AssertionError("decide ran the recognizer")

    def embed(self, image, face):  # pragma: no cover
        raise AssertionError("decide ran the recognizer")


@pytest.fixture
def registry():
    return load_registry((), extra=[("fakes", fake_plugin(fake_info(), fake_info("counting", factory=CountingRecognizer)))])


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "fg.db") as s:
        yield s


def _gate(registry, store, mode="registry-only", policy=None):
    return Gate(policy or facegate.load_policy(EXAMPLE), "counting", registry=registry, store=store, consent_mode=mode, isolation="none")


def test_decide_uses_the_registry_records_ahead_and_runs_nothing(registry, store):
    gate = _gate(registry, store)
    built = CountingRecognizer.calls
    denied, receipt = gate.decide(VERIFY)  # the consent the request claims is not on record
    assert denied.effect == "deny" and receipt is not None and store.audit.head() == receipt
    store.consent.grant("bob", type="separate", given_by="subject", purposes=["payment"])
    permitted, receipt2 = gate.decide(VERIFY)
    assert permitted.effect == "permit" and receipt2.seq == receipt.seq + 2  # the grant is on record in between
    assert [row["record"]["kind"] for row in store.audit.query()] == ["decision", "consent", "decision"]  # no outcome: nothing ran
    records = [row["record"] for row in store.audit.query(kind="decision")]
    assert all(r["channel"] == "decide" for r in records)
    assert [r["decision_id"] for r in records] == [denied.decision_id, permitted.decision_id]
    assert [r["effect"] for r in records] == ["deny", "permit"]
    assert records[1]["request"]["consent"]["given_by"] == "subject"  # the registry's consent, as the gate adds it
    assert records[1]["request"]["actor"]["stored_persons"] == 0  # and the gallery's count
    assert CountingRecognizer.calls == built and store.audit.verify().ok


def test_decide_takes_the_decision_process_takes(registry, store):
    store.consent.grant("bob", type="separate", given_by="subject", purposes=["payment"])
    gate = _gate(registry, store)
    decided, _ = gate.decide(VERIFY)
    from facegate.gate import _decide

    again, record = _decide.prepare(gate, VERIFY, False)
    assert (decided.effect, decided.reason, decided.determining) == (again.effect, again.reason, again.determining)
    written = [row["record"] for row in store.audit.query(kind="decision")][-1]
    assert written["request"] == store.audit.mask(record)["request"] and written["effect"] == "permit"  # masked as the log holds it
    processed = Gate(facegate.load_policy(EXAMPLE), "fake", registry=registry, store=store, consent_mode="registry-only", isolation="none")
    from facegate.testing import synthetic_face_image

    out = processed.process(VERIFY, synthetic_face_image(), reference=synthetic_face_image())
    assert (out.decision.effect, out.decision.reason, out.decision.determining) == (decided.effect, decided.reason, decided.determining)


def test_audit_failure_is_a_deny_without_receipt(registry):
    audit = MemoryAudit()
    audit.fail = OSError("disk full")
    gate = Gate(conformance_policy(), "fake", registry=registry, audit=audit, isolation="none")
    decision, receipt = gate.decide(DETECT)
    assert receipt is None and decision.effect == "deny" and decision.reason == "audit_unavailable"
    assert "disk full" in decision.errors[-1]["error"]
    decision, receipt = asyncio.run(gate.decide_async(DETECT))  # a log without append_later: the executor path
    assert receipt is None and decision.reason == "audit_unavailable"


def test_decide_async_shares_commits_and_every_receipt_is_durable(registry, store):
    gate = _gate(registry, store, mode="request-only", policy=conformance_policy())
    commits = store.audit.commits

    async def many():
        return await asyncio.gather(*(gate.decide_async({**DETECT, "subject": {"id": f"s{i}"}}) for i in range(200)))

    decided = asyncio.run(many())
    receipts = [r for _, r in decided]
    assert all(isinstance(r, AuditReceipt) for r in receipts)
    assert sorted(r.seq for r in receipts) == list(range(1, 201))
    rows = {row["seq"]: row for row in store.audit.query()}
    assert all(rows[r.seq]["hash"] == r.hash and rows[r.seq]["record"]["decision_id"] == d.decision_id for d, r in decided)
    assert store.audit.commits - commits < 200  # group commit: the 200 decisions did not take 200 commits
    assert store.audit.verify().ok


def test_decide_async_on_a_closed_log_denies(registry, tmp_path):
    store = SQLiteStore(tmp_path / "fg.db")
    gate = _gate(registry, store, mode="request-only", policy=conformance_policy())
    store.close()
    decision, receipt = asyncio.run(gate.decide_async(DETECT))
    assert receipt is None and decision.effect == "deny" and decision.reason == "audit_unavailable"
