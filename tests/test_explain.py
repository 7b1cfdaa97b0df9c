"""Unmet permits on every deny, and remedies that re-decide to a permit."""

from __future__ import annotations

from pathlib import Path

import pytest

import facegate
from facegate._cases import load_cases
from facegate.cli import main
from facegate.explain import ACTIONABLE, find_remedies
from facegate.explain._facts import ABSENT, with_changes

CAC = Path(__file__).resolve().parents[1] / "policies" / "cn-cac-2023-draft"
SHOP = {
    "operation": "analyze", "attributes": ["ethnicity"], "purpose": "marketing", "jurisdiction": "CN",
    "place": {"type": "business_premises", "signage": True},
    "actor": {"role": "business_premises", "sector": "retail", "stored_persons": 0, "filing": "none",
              "pia": {"completed": True, "covers_purpose": True}},
}
TOILET = {"operation": "detect", "purpose": "access_control", "jurisdiction": "CN",
          "place": {"type": "private_space", "private_kind": "toilet"},
          "consent": {"type": "separate", "given_by": "subject", "purposes": ["access_control"]}}


@pytest.fixture(scope="module")
def cac():
    return facegate.load_policy(CAC)


def _by_rule(decision):
    return {u["rule"]: u for u in decision.unmet}


def test_a_deny_for_want_of_consent_names_the_consent_permit_in_plain_words(cac):
    request = {**SHOP, "operation": "detect", "attributes": []}
    request.pop("attributes")
    d = cac.decide(request)
    assert d.reason == "no_permit"
    unmet = _by_rule(d)
    assert set(unmet) == {"cn23-05-consent", "cn23-05-law-dispenses-with-consent"}  # not the erasure permit
    words = [f["plain"] for f in unmet["cn23-05-consent"]["failed"]]
    assert words == ["consent type is one of “separate”, “written”", "who gave the consent is stated",
                     "declared purpose is among consented purposes"]
    assert all(f["value"] is False for f in unmet["cn23-05-consent"]["failed"])
    assert unmet["cn23-05-consent"]["provision"] == "CN23-05"


def test_consent_for_another_purpose_names_only_the_purpose(cac):
    request = {**SHOP, "operation": "detect", "consent": {"type": "separate", "given_by": "subject", "purposes": ["payment"]}}
    request.pop("attributes")
    unmet = _by_rule(cac.decide(request))
    assert [f["plain"] for f in unmet["cn23-05-consent"]["failed"]] == ["declared purpose is among consented purposes"]


def test_when_a_forbid_fires_the_missing_consent_shows_too(cac):
    d = cac.decide(SHOP)
    assert d.reason == "forbidden" and [x["provision"] for x in d.determining] == ["CN23-14"]
    assert "cn23-05-consent" in _by_rule(d)


def test_no_unmet_permits_when_a_permit_applied_or_for_a_permit(cac):
    assert cac.decide(TOILET).reason == "forbidden" and cac.decide(TOILET).unmet == ()  # consent applied; the place forbids
    ok = {**SHOP, "consent": {"type": "separate", "given_by": "subject", "purposes": ["marketing"]}}
    d = cac.decide(ok)
    assert d.permitted and d.unmet == () and d.to_dict()["unmet"] == []


def test_to_dict_before_and_after_unmet_is_read_gives_the_same_report_shared_with_nothing(cac):
    """``to_dict()`` on a deny whose ``unmet`` was not read builds a report of its own (not kept);
    after ``unmet`` is read it copies that one: the same document either way, and changing the
    dict changes neither the decision nor a later dict."""
    first, second = cac.decide(SHOP), cac.decide(SHOP)
    early = first.to_dict()  # unmet not read yet
    assert "unmet" not in first._trace.fixed
    assert second.unmet and second.to_dict()["unmet"] == early["unmet"] == [
        {**u, "failed": list(u["failed"]), "excepted_by": list(u["excepted_by"])} for u in first.unmet]
    early["unmet"][0]["failed"][0]["plain"] = "changed"
    early["unmet"][0]["rule"] = "changed"
    assert first.unmet[0]["rule"] == "cn23-05-consent" and first.unmet[0]["failed"][0]["plain"] != "changed"
    again = first.to_dict()
    assert again["unmet"] == second.to_dict()["unmet"]
    again["unmet"][0]["failed"].clear()
    assert first.unmet[0]["failed"] and first.to_dict()["unmet"][0]["failed"]


def test_unmet_permits_are_in_the_dict_the_cli_and_the_gate_record(cac, capsys, tmp_path):
    import json

    d = cac.decide(SHOP)
    assert d.to_dict()["unmet"][0]["rule"] == "cn23-05-consent"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(SHOP))
    assert main(["decide", "--policy", str(CAC), "--request", str(path)]) == 0
    assert "not permitted by CN23-05 cn23-05-consent: needs consent type is one of" in capsys.readouterr().out

    from facegate import Gate
    from facegate._plugins import load_registry
    from facegate.testing import fake_info, fake_plugin, synthetic_face_image

    records = []

    class Log:
        def append(self, record):
            records.append(record)

    registry = load_registry((), extra=[("fakes", fake_plugin(fake_info()))])
    gate = Gate(cac, "fake", registry=registry, audit=Log())
    gate.process(SHOP, synthetic_face_image())
    gate.close()
    decision = next(r for r in records if r["kind"] == "decision")
    assert decision["unmet"][0] == {"rule": "cn23-05-consent", "provision": "CN23-05",
                                    "failed": ["consent type is one of “separate”, “written”", "who gave the consent is stated",
                                               "declared purpose is among consented purposes"]}


def test_explain_lists_only_relevant_blocked_permits(cac):
    d = cac.decide(SHOP, explain=True)
    assert "cn23-05-erasure" not in {b["rule"] for b in d.explanation["blocked_permits"]}


# -- remedies


def test_ethnicity_for_marketing_needs_separate_consent(cac):
    remedies = cac.decide(SHOP).remedies
    assert remedies, "a lawful variant exists"
    first = {c["fact"]: c["to"] for c in remedies[0]["changes"]}
    assert first == {"consent.type": "separate", "consent.given_by": "subject", "consent.purposes": ["marketing"]}
    assert remedies[0]["decision"]["effect"] == "permit"


def test_a_camera_in_a_toilet_has_no_remedy(cac, capsys, tmp_path):
    import json

    report = find_remedies(cac, TOILET)
    assert report.remedies == () and report.exhausted
    path = tmp_path / "r.json"
    path.write_text(json.dumps(TOILET))
    assert main(["decide", "--policy", str(CAC), "--request", str(path), "--remedies"]) == 0
    out = capsys.readouterr().out
    assert "no lawful variant" in out


def test_remedies_of_a_permit_or_an_invalid_request_are_empty(cac):
    assert cac.decide({**SHOP, "consent": {"type": "separate", "given_by": "subject", "purposes": ["marketing"]}}).remedies == ()
    assert cac.decide({"operation": "fly"}).remedies == ()


def _apply(request, remedy):
    changes = {tuple(c["fact"].split(".")): (ABSENT if c["to"] is None else c["to"]) for c in remedy["changes"]}
    return with_changes(request, changes), changes


#: Deny cases of the CAC pack for which the law leaves no lawful variant (the fact that makes it
#: unlawful is not one the deployment can change) -- checked below by the search AND by the solver.
NO_VARIANT = {
    "scope-hong-kong-branch", "scope-iso-subdivision-cn-hk", "scope-jurisdiction-not-stated",  # outside the draft's scope
    "scope-old-iso-code-cn-91-hong-kong", "scope-old-iso-code-cn-92-macao", "scope-old-iso-code-cn-71-taiwan",
    "purpose-other-is-not-specific",  # CN23-04: an unspecified purpose
    "hotel-room-camera-even-with-consent", "gym-changing-room-entry", "toilet-paper-dispenser-in-public-toilet",  # CN23-06
    "place-not-stated-fails-closed",  # a private space cannot be ruled out
    "bank-customer-declined-face", "residential-resident-declined-face",  # the person said no
    "analysis-attributes-not-stated",  # CN23-14 fails closed
}


def test_every_deny_case_of_the_cac_pack_has_remedies_that_re_decide_to_permit_or_none(cac):
    z3 = pytest.importorskip("z3")  # noqa: F841
    from facegate.analysis._variants import lawful_variant

    denies = 0
    none = set()
    for case, _, _ in load_cases(CAC):
        request = case["request"]
        if cac.decide(request).permitted:
            continue
        denies += 1
        report = find_remedies(cac, request)
        if not report.remedies:
            none.add(case["id"])
            assert report.exhausted and report.proved_none, case["id"]
            assert lawful_variant(cac, request)["status"] == "none", case["id"]  # proved, not just not found
            continue
        for remedy in report.remedies:
            variant, changes = _apply(request, remedy)
            assert cac.decide(variant).permitted, (case["id"], remedy)
            for path in changes:  # only what a deployment can change
                assert any(path[: len(p)] == p for p in ACTIONABLE), (case["id"], path)
            for path in changes:  # smallest: no change can be dropped
                fewer = {p: v for p, v in changes.items() if p != path}
                assert not cac.decide(with_changes(request, fewer)).permitted, (case["id"], path)
    assert denies >= 40
    assert none == NO_VARIANT


def test_a_variable_made_of_conditions_is_opened_into_items_with_their_guards(cac):
    from facegate.explain._items import items_for

    when = items_for(cac).rules["cn23-05-consent"].when
    assert [i.plain for i in when] == [
        "the request processes facial information (anything but erasing it)",
        "consent type is one of “separate”, “written”",
        "who gave the consent is stated",
        "consent withdrawn is not true (or not stated)",
        "declared purpose is among consented purposes",
    ]
    withdrawn = when[3]
    assert withdrawn.text.startswith("!(has(request.consent)) || ")  # a "must not" holds while consent is unstated
    activation = cac._activation({"operation": "detect", "purpose": "payment"})
    assert [i.run(activation, None) for i in when] == [True, False, False, True, False]


def test_a_pack_lists_its_own_actionable_facts(pack_copy, capsys):
    """remedies.yaml replaces the default list: with consent not actionable, no remedy exists."""
    request = {"operation": "verify", "purpose": "payment", "subject": {"id": "s", "age": 30}}
    policy = facegate.load_policy(pack_copy)
    assert find_remedies(policy, request).remedies  # obtain consent
    (pack_copy / "remedies.yaml").write_text("format: facegate/remedies/v1\nactionable: [storage]\n")
    policy = facegate.load_policy(pack_copy)
    report = find_remedies(policy, request)
    assert report.remedies == ()
    if report.proved_none is not None:  # with z3 installed, proved
        assert report.proved_none
    (pack_copy / "remedies.yaml").write_text("format: facegate/remedies/v1\nactionable: [Consent]\n")
    with pytest.raises(facegate.PolicyError, match="remedies.yaml"):
        find_remedies(facegate.load_policy(pack_copy), request)


def test_every_remedy_of_every_shipped_pack_re_decides_to_permit():
    """The packs with pack-declared facts too: each remedy (search or solver) is a permit."""
    for name in ("cn-cac-2025", "eu-ai-act-art5", "us-il-bipa"):
        folder = CAC.parent / name
        policy = facegate.load_policy(folder)
        checked = 0
        for case, _, _ in load_cases(folder):
            request = case["request"]
            decision = policy.decide(request)
            if decision.permitted or decision.reason in ("invalid_request", "policy_not_in_force"):
                continue
            for remedy in find_remedies(policy, request).remedies:
                variant, _ = _apply(request, remedy)
                assert policy.decide(variant).permitted, (name, case["id"], remedy)
                checked += 1
        assert checked >= 5, name


def test_a_denied_decision_pickles_without_its_policy(cac):
    import pickle

    d = cac.decide(SHOP)
    assert d.remedies
    back = pickle.loads(pickle.dumps(d))
    assert back.unmet == d.unmet and back.effect == "deny" and back.remedies == ()


def test_a_composed_deny_carries_each_denying_packs_unmet_permits():
    from facegate._compose import Composition, request_day

    policies = [facegate.load_policy(CAC.parent / name) for name in ("cn-cac-2025", "eu-ai-act-art5", "us-il-bipa")]
    composed = Composition(policies)
    request = {"operation": "verify", "purpose": "payment", "jurisdiction": "DE", "time": "2026-03-02T10:00:00+01:00"}
    d = composed.decide(request)
    assert d.effect == "deny"
    moment = request_day(request, None)[1]
    governing = {x["pack"] for x in d.packs if x.get("governs")}
    expected = [(p.id, u["rule"]) for p in policies if p.id in governing for u in p.decide(request, at=moment).unmet]
    assert expected and [(u["pack"], u["rule"]) for u in d.unmet] == expected
    assert all("pack" in u for u in d.unmet)


def _variants(request):
    """The request, and copies with one top-level fact removed (absent facts make items false or errors)."""
    yield request
    for key in request:
        if key != "operation":
            yield {k: v for k, v in request.items() if k != key}


def _values(value):
    return ("error", value.message) if hasattr(value, "message") else value


@pytest.mark.parametrize("name", ["cn-cac-2023-draft", "cn-cac-2025", "eu-ai-act-art5", "us-il-bipa", "example-facts"])
def test_fused_unmet_items_have_each_items_own_value(name):
    """The items of an operation's permits run fused into one function (shared sub-expressions,
    items folded by the operation); on every case request of every shipped pack, and on copies
    with a fact removed, each item's fused value is the value of its own program, and the unmet
    permits equal those of the interpreter backend (no fusing there)."""
    from facegate import _compile
    from facegate.explain._items import items_for
    from facegate.explain._unmet import _permits_of, _plan

    folder = CAC.parent / name
    policy = facegate.load_policy(folder)
    reference = facegate.load_policy(folder, backend="interpreter")
    table = items_for(policy)
    compared = denies = validated = 0
    for case, _, _ in load_cases(folder):
        for variant, request in enumerate(_variants(case["request"])):
            decision = policy.decide(request)
            trace = decision._trace
            if trace.activation is None:  # invalid or not in force: no items were evaluated
                continue
            permits, _, order = _permits_of(policy, policy._procedure.candidates(request["operation"]), request["operation"])
            plan = _plan(table, permits, order, request["operation"])
            fused = plan.run(trace.activation, _compile.new_budget())
            own = [i.run(trace.activation, _compile.new_budget()) for i in plan.flat]  # each item's own program
            assert [_values(v) for v in fused] == [_values(v) for v in own], (name, case["id"])
            if trace.activation["request"] is request and not policy._procedure.violations(request):  # a validated request
                optimistic = plan.run(trace.activation, _compile.new_budget(), True)  # what Decision.unmet runs
                assert [_values(v) for v in optimistic] == [_values(v) for v in own], (name, case["id"])
                validated += 1
            assert len(plan.flat) == sum(len(table.rules[r.id].when) + len(table.rules[r.id].unless) for r in permits)
            compared += len(own)
            if decision.effect == "deny" and variant == 0:  # the interpreter is slow: the cases themselves
                denies += 1
                assert decision.unmet == reference.decide(request).unmet, (name, case["id"])
    assert compared >= 20 and denies >= 3 and validated >= 3, (name, compared, denies, validated)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in CAC.parent.glob("*/pack.yaml")))
def test_a_kept_unmet_report_is_the_computed_one_and_every_decisions_own(name):
    """A report whose items all came out true or false is kept per (values, outcomes) and built
    again for each decision: on every deny case of every shipped pack it equals the report computed
    with nothing kept, and no dict or list in it is shared with another decision's report."""
    from facegate.explain._items import items_for

    folder = CAC.parent / name
    policy = facegate.load_policy(folder)
    reports = [d.unmet for case, _, _ in load_cases(folder) if (d := policy.decide(case["request"])).effect == "deny"]
    kept = sum(len(plan.reports) for plan in items_for(policy).fused.values())
    again = []
    for case, _, _ in load_cases(folder):
        first, second = policy.decide(case["request"]), policy.decide(case["request"])
        if first.effect != "deny":
            continue
        a, b = first.unmet, second.unmet
        assert a == b
        assert not {id(x) for x in _containers(a)} & {id(x) for x in _containers(b)}, (name, case["id"])
        again.append(a)
    for plan in items_for(policy).fused.values():
        plan.reports.clear()
    fresh = [d.unmet for case, _, _ in load_cases(folder) if (d := policy.decide(case["request"])).effect == "deny"]
    assert reports == again == fresh, name
    assert kept >= 1 and any(reports), name


def _containers(value):
    """Every dict and list inside ``value`` (tuples are immutable: only looked into)."""
    if isinstance(value, (dict, list)):
        yield value
    if isinstance(value, (dict, list, tuple)):
        for v in value.values() if isinstance(value, dict) else value:
            yield from _containers(v)


def test_a_policy_no_longer_used_is_not_kept_alive_by_the_unmet_report():
    """What the report keeps per candidates lives on the policy, not in the module: a pack
    reloaded many times (a service's hot reload) leaves no old rules behind, nor fills a shared
    table that would make every later report recompute."""
    import gc
    import weakref

    policy = facegate.load_policy(CAC)
    assert policy.decide(SHOP).unmet  # the report ran: its permits are kept
    assert policy.__dict__["_unmet_permits"]
    rule = weakref.ref(policy.pack.rules[0])
    del policy
    gc.collect()
    assert rule() is None
