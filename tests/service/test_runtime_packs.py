"""`/v1/packs` lists every pack of a composed deployment (mypy --strict found it failing on one)."""

from __future__ import annotations

import types

import facegate
from facegate._compose import Composition
from facegate.service._runtime import Runtime
from fg_paths import ROOT


def test_packs_of_a_composition_lists_each_pack():
    ids = ["cn-cac-2023-draft", "us-il-bipa"]
    composed = Composition([facegate.load_policy(ROOT / "policies" / name) for name in ids])
    stub = types.SimpleNamespace(gate=types.SimpleNamespace(policy=composed))
    listed = Runtime.packs(stub)  # type: ignore[arg-type]
    assert [p["id"] for p in listed] == ids and all(p["rules"] > 0 for p in listed)
    single = types.SimpleNamespace(gate=types.SimpleNamespace(policy=composed.policies[0]))
    assert [p["id"] for p in Runtime.packs(single)] == ids[:1]  # type: ignore[arg-type]
