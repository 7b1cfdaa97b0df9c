"""Deciding on several processes gives the decisions one process gives, in order."""

from __future__ import annotations

import pickle

import pytest

import facegate
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
    if not caller_helps:  # every decision came back from a worker
        assert all(d._trace.activation is None for d in pooled)
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
    with DecisionPool(policy, processes=1, start_method="spawn", caller_helps=False) as pool, \
            pytest.raises(facegate.FacegateError, match="changed since it was loaded"):
        pool.decide_many(_requests()[:3])
