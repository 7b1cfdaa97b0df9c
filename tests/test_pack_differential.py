"""Differential: every condition of every shipped pack means the same under the native compiler
and under cel-python's interpreter (with the documented spec corrections), on 2,000 random
activations per rule (six packs: sized to keep the suite inside its budget) -- valid, malformed (wrong types) and with missing fields."""

from __future__ import annotations

import pytest

import facegate
from facegate import cel
from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))
PER_RULE = 2_000


def _conditions(policy: facegate.Policy) -> list[tuple[str, str]]:
    out = []
    for rule in policy.rules:
        items = [*rule.when, *rule.unless] + ([rule.message_expr] if rule.message_expr else [])
        for i, cond in enumerate(items):
            out.append((f"{rule.id}[{i}]", cond.expanded))
        for side, conds in (("when", rule.when), ("unless", rule.unless)):
            if len(conds) > 1:  # the per-request path runs the items joined with &&
                out.append((f"{rule.id}[{side}]", " && ".join(f"({c.expanded})" for c in conds)))
    return out


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_native_and_interpreter_agree_on_every_pack_condition(pack):
    policy = facegate.load_policy(pack)
    loader_schema = {"type": "object", "properties": {
        "request": policy.request_schema,  # the pack's own contract: core envelope + its declared facts
        "params": {"type": "object", "properties": {k: {} for k in policy.pack.parameters}},
    }}
    total = 0
    per_rule: dict[str, int] = {}
    conditions = _conditions(policy)
    for index, (label, text) in enumerate(conditions):
        program = cel.compile(text, check=False)
        rule = label.split("[")[0]
        count = -(-PER_RULE // sum(1 for lab, _ in conditions if lab.split("[")[0] == rule))
        acts = cel.random_activations(loader_schema, count, seed=index, paths=program.reference_paths, presence=program.presence_paths)
        for act in acts:
            act["params"] = dict(policy.pack.parameters)
        report = cel.testing_differential(text, acts, check=False, released_limit=50)
        assert report.ok, (label, text, report.divergences[:2])
        total += report.activations
        per_rule[rule] = per_rule.get(rule, 0) + report.activations
    assert min(per_rule.values()) >= PER_RULE
    print(f"\n{pack.name}: {len(per_rule)} rules, {total} activations, 0 divergences")
