"""Deciding on several processes gives the decisions one process gives, in order."""

from __future__ import annotations

import gc
import json
import os
import pickle
import threading
import time

import pytest

import facegate
from facegate import _forked, _stamps
from facegate import _pool_codec as codec
from facegate._pool import DecisionPool
from fg_paths import ROOT

CAC = ROOT / "policies" / "cn-cac-2023-draft"


def _requests():
    from facegate._cases import load_cases  # the pack's own case requests

    return [case["request"] for case, _, _ in load_cases(CAC)]


@pytest.mark.parametrize("caller_helps", [True, False])
def test_pool_decides_like_one_process_in_order(caller_helps):
    policy = facegate.load_policy(CAC)
    requests = _requests() * 3
    alone = [(d.effect, [x["rule"] for x in d.determining], dict(d.rules), d.obligations, d.warnings) for d in policy.decide_many(requests)]
    with DecisionPool(policy, processes=2, caller_helps=caller_helps) as pool:
        pooled = pool.decide_many(requests, chunksize=16)
    assert [(d.effect, [x["rule"] for x in d.determining], dict(d.rules), d.obligations, d.warnings) for d in pooled] == alone
    assert len({d.decision_id for d in pooled}) == len(requests)
    if not caller_helps:  # every decision came back from a worker, rebuilt here: the same documents
        assert [_plain(d) for d in pooled] == [_plain(d) for d in policy.decide_many(requests)]
    assert policy.decide_many(requests[:5], processes=2)[0].effect == alone[0][0]


def test_spawned_workers_load_the_same_revision():
    policy = facegate.load_policy(CAC)
    requests = _requests()[:10]
    with DecisionPool(policy, processes=1, start_method="spawn", caller_helps=False) as pool:
        pooled = pool.decide_many(requests)
    assert [d.effect for d in pooled] == [d.effect for d in policy.decide_many(requests)]


def test_a_decision_pickles_with_its_id_time_and_outcomes():
    policy = facegate.load_policy(CAC)
    d = policy.decide(_requests()[0])
    copy = pickle.loads(pickle.dumps(d))
    assert copy.decision_id == d.decision_id and copy.evaluated_at == d.evaluated_at
    assert dict(copy.rules) == dict(d.rules) and copy.to_dict() == d.to_dict()


def _comparable(raw: bytes) -> dict:
    import json

    d = json.loads(raw)
    for key in ("decision_id", "evaluated_at", "duration_us"):
        d.pop(key, None)
    return d


def test_decisions_as_json_bytes_are_the_decisions_to_json_in_order():
    policy = facegate.load_policy(CAC)
    requests = _requests() * 2
    alone = [_comparable(policy.decide(r).to_json()) for r in requests]
    with DecisionPool(policy, processes=1) as pool:
        pooled = pool.decide_many(requests, chunksize=8, as_json=True)
    assert all(isinstance(b, bytes) for b in pooled)
    assert [_comparable(b) for b in pooled] == alone
    with pytest.raises(facegate.FacegateError, match="closed"):
        pool.decide_many(requests)  # a closed pool refuses (its workers are gone)


@pytest.mark.parametrize("caller_helps", [True, False])
def test_json_documents_in_give_the_decisions_json_bytes_out_in_order(caller_helps):
    """``decide_json``: each document read as the service reads a body, decided, answered as its
    ``to_json()``; documents that are not JSON, not UTF-8, or carry an integer beyond 64 bits are
    read as ``json.loads`` reads them (invalid requests saying why, or the exact integer)."""
    policy = facegate.load_policy(CAC)
    requests = _requests() * 2
    big = {**requests[0], "subject_count": 2**70}  # beyond 64 bits: orjson would read a float
    documents = [json.dumps(r).encode() for r in requests] + [json.dumps(big).encode(), b"{not json", b"\xff\xfe", b"[1, 2]",
                                                              b'{"a": NaN}', "  {}  "]
    with DecisionPool(policy, processes=1, caller_helps=caller_helps) as pool:
        pooled = pool.decide_json(documents, chunksize=8)
    assert all(type(b) is bytes for b in pooled) and len(pooled) == len(documents)
    assert [_comparable(b) for b in pooled[:len(requests) + 1]] == [_comparable(policy.decide(r).to_json()) for r in [*requests, big]]
    unreadable = [json.loads(b) for b in pooled[len(requests) + 1:]]
    assert [d["decision"] for d in unreadable] == ["deny"] * 5 and {d["reason"] for d in unreadable} == {"invalid_request"}
    messages = [d["violations"][0]["message"] for d in unreadable]
    assert messages[0].startswith("request is not valid JSON: Expecting property name") and messages[1] == "request is not UTF-8"
    assert "json object" in messages[2] and "`NaN` is not JSON" in messages[3] and "`operation` is required" in messages[4]
    from facegate._json_in import read_json

    assert read_json(json.dumps(big).encode())["subject_count"] == 2**70  # exact, as json.loads reads it
    for number in (-(2**63) - 1, -9999999999999999999, 2**64, -(2**63), 2**64 - 1, 10**18):  # orjson's integers end at -2**63 and 2**64-1
        assert read_json(str(number).encode()) == number and type(read_json(str(number).encode())) is int
    with DecisionPool(policy, processes=1) as pool:
        assert _comparable(pool.decide_json([bytearray(documents[0])])[0]) == _comparable(pooled[0])  # any bytes-like
        with pytest.raises(TypeError, match="decide_many takes requests as dicts"):
            pool.decide_json([requests[0]])  # a dict, not its document
        with pytest.raises(TypeError):
            pool.decide_json([5])  # not a document (bytes(5) would be five zero bytes)
        lone = pool.decide_json(['{"operation": "\ud800"}', documents[0]])  # a str with a lone surrogate: that document alone is refused
        assert json.loads(lone[0])["violations"][0]["message"] == "request is not UTF-8"
        assert _comparable(lone[1]) == _comparable(pooled[0])


@pytest.mark.parametrize("shelf_bytes", [2 * 1024 * 1024, 8192, 0])  # room for every chunk; for some; none (the pipe)
def test_a_kept_workers_json_answers_on_its_shelf_or_through_the_pipe_are_the_same(monkeypatch, shelf_bytes):
    from facegate import _pool

    monkeypatch.setattr(_pool, "_SHELF_BYTES", shelf_bytes)
    policy = facegate.load_policy(CAC)
    requests = _requests() * 3
    documents = [json.dumps(r).encode() for r in requests]
    alone = [_comparable(policy.decide(r).to_json()) for r in requests]
    with DecisionPool(policy, processes=2, caller_helps=False) as pool:
        for size in (1, 3, 16):  # a slot reused many times, by chunks of several sizes, batch after batch
            assert [_comparable(b) for b in pool.decide_json(documents, chunksize=size)] == alone
            assert [_comparable(b) for b in pool.decide_many(requests, chunksize=size, as_json=True)] == alone
        shelves = [shelf for shelf in pool._shelves.values() if shelf is not None]
        assert len(shelves) == (2 if shelf_bytes else 0)
        assert all(shelf.memory[:1] == b"{" for shelf in shelves)  # the workers did answer there (a decision starts with "{")


def test_a_worker_that_dies_makes_decide_json_raise():
    policy = facegate.load_policy(CAC)
    documents = [json.dumps(r).encode() for r in _requests()]
    pool = DecisionPool(policy, processes=1, caller_helps=False)
    try:
        assert len(pool.decide_json(documents[:4])) == 4
        pool._procs[0].kill()
        pool._procs[0].join()
        with pytest.raises(facegate.FacegateError, match="worker died"):
            pool.decide_json(documents, chunksize=4)
    finally:
        pool.close()


def test_a_worker_that_dies_makes_decide_many_raise_not_lose_decisions():
    policy = facegate.load_policy(CAC)
    pool = DecisionPool(policy, processes=1, caller_helps=False)
    try:
        assert len(pool.decide_many(_requests()[:4])) == 4
        pool._procs[0].kill()
        pool._procs[0].join()
        with pytest.raises(facegate.FacegateError, match="worker died"):
            pool.decide_many(_requests(), chunksize=4)
    finally:
        pool.close()


def test_a_worker_that_cannot_load_the_pack_reports_it(tmp_path):
    import shutil

    pack = tmp_path / CAC.name
    shutil.copytree(CAC, pack)
    policy = facegate.load_policy(pack)
    text = (pack / "pack.yaml").read_text(encoding="utf-8")
    (pack / "pack.yaml").write_text(text.replace("as code\"", "as code, edited\"", 1), encoding="utf-8")
    assert facegate.load_policy(pack).revision != policy.revision
    with DecisionPool(policy, processes=1, start_method="spawn", caller_helps=False) as pool:
        with pytest.raises(facegate.FacegateError, match="changed since it was loaded"):
            pool.decide_many(_requests()[:3])
        # its answers to the failed batch may still come: the pool refuses to read them as another batch's
        with pytest.raises(facegate.FacegateError, match="can no longer decide"):
            pool.decide_many(_requests()[:3])


# -- Policy.decide_many(requests, processes=N): workers forked for the batch -----------------------

def _plain(decision) -> dict:
    """A decision's document, less what differs between any two decisions (id, time)."""
    d = decision.to_dict()
    del d["decision_id"], d["evaluated_at"]
    return d


def _plain_json(raw: bytes) -> dict:
    d = json.loads(raw)
    del d["decision_id"], d["evaluated_at"]
    return d


@pytest.fixture
def no_stealing(monkeypatch):
    """The caller decides its own share only, so the workers' shares surely come from the workers,
    however late they start."""
    claims = _forked._claims

    def own_share_only(memory, party, processes, count):
        if party:
            yield from claims(memory, party, processes, count)
            return
        for index in range(count // processes):  # the caller's share, claimed as _claims does
            if memory[index] == 0:
                memory[index] = 1
                yield index

    monkeypatch.setattr(_forked, "_claims", own_share_only)


@pytest.mark.parametrize("processes", [2, 3])
def test_forked_decisions_are_the_decisions_of_one_process_in_order(no_stealing, processes):
    policy = facegate.load_policy(CAC)
    requests = _requests() * 3
    alone = [policy.decide(r) for r in requests]
    pooled = _forked.decide_forked(policy, requests, processes, chunksize=5)
    assert len(pooled) == len(requests)
    assert [_plain(d) for d in pooled] == [_plain(d) for d in alone]  # unmet (computed here) included
    assert [dict(d.rules) for d in pooled] == [dict(d.rules) for d in alone]
    from_workers = [d for d in pooled if d._trace.activation is None and d.permitted]
    assert from_workers, "no decision came back from a worker"
    denied = [i for i, d in enumerate(pooled) if d.reason in ("forbidden", "no_permit") and i >= len(requests) // processes]
    assert denied and all(pooled[i].__dict__.get("_origin", (None, None))[1] is requests[i] for i in denied)


@pytest.mark.parametrize("shelf_bytes_each", [8192, 1000, 10])  # room for all; until full, then the pipe; none
def test_forked_json_bytes_are_the_decisions_to_json_in_order(no_stealing, monkeypatch, shelf_bytes_each):
    monkeypatch.setattr(_forked, "_SHELF_BYTES_EACH", shelf_bytes_each)
    policy = facegate.load_policy(CAC)
    requests = _requests() * 3
    alone = [_plain_json(policy.decide(r).to_json()) for r in requests]
    pooled = _forked.decide_forked(policy, requests, 2, as_json=True, chunksize=7)
    assert all(type(b) is bytes for b in pooled)
    assert [_plain_json(b) for b in pooled] == alone


@pytest.mark.parametrize("as_json", [False, True])
def test_decide_many_with_two_processes_through_the_public_call(as_json):
    policy = facegate.load_policy(CAC)
    requests = _requests() * 4  # enough chunks to fork for
    pooled = policy.decide_many(requests, processes=2, as_json=as_json)
    alone = policy.decide_many(requests, as_json=as_json)
    plain = _plain_json if as_json else _plain
    assert [plain(d) for d in pooled] == [plain(d) for d in alone]
    assert policy.decide_many(iter(requests[:3]), processes=2, as_json=as_json)  # any iterable; too few to fork


def test_forked_workers_inherit_the_requests_nothing_is_pickled(no_stealing):
    policy = facegate.load_policy(CAC)
    requests = _requests()
    requests[-1] = {**requests[-1], "held": threading.Lock()}  # cannot be pickled, so could not be sent to a worker
    pooled = _forked.decide_forked(policy, requests, 2, chunksize=5)
    assert [_plain(d) for d in pooled] == [_plain(policy.decide(r)) for r in requests]
    assert pooled[-1].effect == "deny" and pooled[-1].violations
    share = pooled[len(pooled) // 2:]
    assert any(d.permitted and d._trace.activation is None for d in share)  # the worker decided its share
    with DecisionPool(policy, processes=1, caller_helps=False) as pool, pytest.raises(TypeError):
        pool.decide_many(requests)


def test_forked_decisions_have_unique_ids_and_their_own_times(no_stealing):
    policy = facegate.load_policy(CAC)
    requests = _requests() * 2
    _stamps.new_id()  # this process holds ids made and not yet handed out when the worker is forked
    before = time.time()
    as_json = _forked.decide_forked(policy, requests, 2, as_json=True, chunksize=5)
    objects = _forked.decide_forked(policy, requests, 2, chunksize=5)
    after = time.time()
    ids = [json.loads(b)["decision_id"] for b in as_json] + [d.decision_id for d in objects]
    assert len(set(ids)) == len(ids)
    times = [json.loads(b)["evaluated_at"] for b in as_json] + [d.evaluated_at for d in objects]
    import datetime as dt

    assert all(before - 1e-3 <= dt.datetime.fromisoformat(t).timestamp() <= after + 1e-3 for t in times)


def test_a_forked_worker_killed_mid_run_makes_decide_many_raise(no_stealing, monkeypatch):
    policy = facegate.load_policy(CAC)
    parent, encode = os.getpid(), codec.encode

    def die_in_the_worker(*args):
        if os.getpid() != parent:
            os.kill(os.getpid(), 9)
        return encode(*args)

    monkeypatch.setattr(codec, "encode", die_in_the_worker)
    with pytest.raises(facegate.FacegateError, match="worker died .*killed by signal 9"):
        _forked.decide_forked(policy, _requests() * 2, 2, chunksize=5)


def test_a_forked_worker_that_fails_makes_decide_many_raise(no_stealing, monkeypatch):
    policy = facegate.load_policy(CAC)
    parent, encode = os.getpid(), codec.encode

    def fail_in_the_worker(*args):
        if os.getpid() != parent:
            raise RuntimeError("disk on fire")
        return encode(*args)

    monkeypatch.setattr(codec, "encode", fail_in_the_worker)
    with pytest.raises(facegate.FacegateError, match="worker failed: RuntimeError: disk on fire"):
        policy.decide_many(_requests() * 4, processes=2)


def test_claims_cover_every_chunk_once_per_claimant():
    import mmap

    memory = mmap.mmap(-1, 10)
    mine = list(_forked._claims(memory, 0, 2, 10))  # alone: its share in order, then the rest from the back
    assert mine == [0, 1, 2, 3, 4, 9, 8, 7, 6, 5]
    assert list(_forked._claims(memory, 1, 2, 10)) == []  # all claimed: nothing left for a late worker


def test_the_collector_is_paused_for_a_batch_and_restored():
    import gc

    policy = facegate.load_policy(CAC)
    seen = []
    procedure = policy._procedure
    decide = procedure.decide
    procedure.decide = lambda *a: (seen.append(gc.isenabled()), decide(*a))[1]
    try:
        assert gc.isenabled()
        policy.decide_many(_requests()[:2])
        assert seen == [False, False] and gc.isenabled()
        gc.disable()
        policy.decide_many(_requests()[:1])
        assert not gc.isenabled()  # paused by the caller: left paused
    finally:
        gc.enable()
        del procedure.decide


def test_a_decision_of_a_kept_tally_is_sent_as_its_applied_rules_and_rebuilt_as_its_own_copy():
    """A worker sends a decision whose tally is kept as the rules that applied (with its
    references when a message detail is the request's own); any other decision is sent whole.
    The caller rebuilds each, in a policy that has not decided these requests yet, equal to the
    decision made here and sharing no mutable part with another decision."""
    worker = facegate.load_policy(CAC)
    permit = next(r for r in _requests() if worker.decide(r).permitted and worker.decide(r).obligations)
    detailed = next(r for r in _requests() if any("detail" in d["message"] for d in worker.decide(r).determining))
    invalid = {"operation": "verify", "purpose": 7}
    chunk = [permit, detailed, invalid, permit]
    message = codec.encode(worker._procedure, 0, chunk, False, None)
    items = pickle.loads(message[codec._HEAD.size:])
    assert [type(item[0]) for item in items] == [tuple, tuple, dict, tuple]
    assert [len(item) for item in items] == [3, 5, 3, 3]  # the detailed deny carries its references
    assert items[0][0] == worker.decide(permit).__dict__["_applied"]

    caller = facegate.load_policy(CAC)
    assert not caller._procedure._tallies  # nothing decided here yet: the tallies are found by their rules
    decoded = codec.decode(caller._procedure, message, chunk, False, None)
    assert [_plain(d) for d in decoded] == [_plain(caller.decide(r)) for r in chunk]
    assert [d.duration_us for d in decoded] == [item[1] for item in items[:2]] + [items[2][0]["duration_us"], items[3][1]]
    a, b = decoded[0], decoded[3]
    assert a.obligations == b.obligations and a.obligations[0] is not b.obligations[0]
    assert a.determining[0] is not b.determining[0] and a.decision_id != b.decision_id
    deny = decoded[1]
    assert deny.__dict__["_origin"][1] is detailed and deny.unmet == caller.decide(detailed).unmet
    assert deny.determining == worker.decide(detailed).determining
    assert decoded[2].reason == "invalid_request" and decoded[2].violations


def test_a_pool_pauses_the_collector_for_a_batch_and_restores_it():
    from facegate._pool import DecisionPool

    policy = facegate.load_policy(CAC)
    procedure = policy._procedure
    with DecisionPool(policy, processes=1) as pool:
        seen = []
        decide = procedure.decide
        procedure.decide = lambda *a: (seen.append(gc.isenabled()), decide(*a))[1]  # the caller's own share (forked before: not the worker's)
        try:
            assert gc.isenabled()
            decisions = pool.decide_many(_requests() * 8, chunksize=8)
        finally:
            del procedure.decide
        assert len(decisions) == len(_requests()) * 8
        assert seen and not any(seen) and gc.isenabled()
