"""A decision's dict form built by its tally's generated function (facegate._forms) is the same
document as the copied one, and nothing in it is shared: not with the policy, not with another
decision's dict, not with the decision itself."""

from __future__ import annotations

import math

import pytest

import facegate
from facegate._forms import SharedForm
from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))


def _containers(value, found):
    if isinstance(value, (dict, list)):
        found.add(id(value))
        for v in value.values() if isinstance(value, dict) else value:
            _containers(v, found)
    elif isinstance(value, tuple):
        for v in value:
            _containers(v, found)
    return found


def _cases(pack):
    import yaml

    out = []
    for path in sorted((pack / "cases").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for case in (doc or {}).get("cases", []):
                if isinstance(case, dict) and isinstance(case.get("request"), dict):
                    out.append(case["request"])
    return out


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_generated_forms_equal_the_copies_and_share_nothing(pack):
    policy = facegate.load_policy(pack)
    requests = _cases(pack)
    assert requests, "the pack has case requests"
    formed = 0
    for request in requests:
        first, second = policy.decide(request), policy.decide(request)
        a, b = first.to_dict(), second.to_dict()
        if "_form" in first.__dict__:
            formed += 1
            copied = first._copies()
            assert (a["determining"], a["warnings"], a["obligations"], a["errors"], a["policy"]) == copied
        held = _containers((first.determining, first.warnings, first.obligations, first.errors, first.policy), set())
        held |= _containers([r.__dict__ for r in policy.rules], set())
        mine = _containers(a, set())
        assert not mine & _containers(b, set())  # two decisions' dicts share nothing
        assert not mine & held  # nor with the decision or the policy's rules
        a["obligations"].append({"type": "x"})  # changing one dict changes nothing else
        for d in a["determining"]:
            d["message"]["en"] = "changed"
        assert policy.decide(request).to_dict()["determining"] == b["determining"]
    assert formed, "no decision was built from a generated form"


def test_values_without_an_exact_literal_leave_the_tally_without_a_form():
    form = SharedForm(({"rule": "r", "message": {"en": "x"}, "weight": math.inf},), (), (), (), {"id": "p"})
    assert form.build() is None
    ok = SharedForm(({"rule": "r", "message": {"en": "x"}, "n": 1.5, "flag": True, "none": None, "list": (1, "a")},), (), (), (), {"id": "p"})
    built = ok.build()
    assert built == ([{"rule": "r", "message": {"en": "x"}, "n": 1.5, "flag": True, "none": None, "list": [1, "a"]}], [], [], [], {"id": "p"})
    assert built[0][0] is not ok.build()[0][0]


def test_a_built_form_pickles_as_its_parts():
    import pickle

    form = SharedForm(({"rule": "r", "message": {"en": "x"}},), (), ({"type": "t", "sources": ({"rule": "r"},)},), (), {"id": "p"}, True)
    built = form.build()
    copy = pickle.loads(pickle.dumps(form))
    assert copy.build() == built and copy.detailed


def test_a_copier_returns_fresh_data_or_none_without_an_exact_literal():
    from facegate._forms import copier

    value = [{"rule": "r", "failed": [{"condition": "a", "value": False}], "excepted_by": ()}]
    made = copier(value)
    assert made is not None
    a, b = made(), made()
    assert a == b == [{"rule": "r", "failed": [{"condition": "a", "value": False}], "excepted_by": []}]
    assert a is not b and a[0]["failed"] is not b[0]["failed"] and a[0]["failed"][0] is not b[0]["failed"][0]
    assert copier([{"x": math.nan}]) is None and copier([object()]) is None and copier({1: "a"}) is None
    deep: list = []
    for _ in range(1000):  # deeper than the interpreter compiles: no literal, not a crash
        deep = [deep]
    assert copier(deep) is None


def test_a_shallow_copier_makes_new_dicts_of_the_same_items_for_each_group():
    from facegate._forms import shallow_copier

    a, b, c = {"rule": "a", "message": {"en": "x"}}, {"rule": "b"}, {"type": "t", "sources": ({"rule": "a"},)}
    made = shallow_copier(((a, b), (), (c,)))
    first, second = made(), made()
    assert first == second == ((a, b), (), (c,))
    assert all(type(group) is tuple for group in first)
    for x, y, original in zip((*first[0], *first[2]), (*second[0], *second[2]), (a, b, c)):
        assert x is not y and x is not original  # a new dict each call
        assert all(x[k] is original[k] for k in original)  # holding the same values, as dict(d) does
    assert shallow_copier(((), (), ()))() == ((), (), ())
