"""Deciding raises no audit event (PEP 578) once warm.

An in-process gate (``isolation: none``) installs a process-wide audit hook (``facegate._sandbox``),
and an integrator may install their own: every audited operation then calls Python code.  The
decision path, ``to_dict()``, ``to_json()`` and the unmet-permit report must not use audited
builtins (``id()`` is one) -- measured, the unmet report ran 1.8x slower under the gate's hook
while it did.  A hook cannot be removed, so the check runs in a child process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fg_paths import ROOT

PACKS = sorted(p.parent for p in (ROOT / "policies").glob("*/pack.yaml"))

CHILD = r"""
import collections, json, sys
import facegate
from facegate._cases import load_cases
from pathlib import Path

policy = facegate.load_policy(sys.argv[1])
requests = [case["request"] for case, _, _ in load_cases(Path(sys.argv[1]))]

def everything():
    for request in requests:
        decision = policy.decide(request)
        decision.unmet, decision.to_dict(), decision.to_json()
    policy.decide_many(requests)

everything(); everything()  # warm: imports, compiled functions, kept tallies and reports
seen = collections.Counter()
sys.addaudithook(lambda event, args: seen.update([event]))
everything()
print(json.dumps({"events": dict(seen), "requests": len(requests),
                  "denies": sum(not policy.decide(r).permitted for r in requests)}))
"""


@pytest.mark.parametrize("pack", PACKS, ids=lambda p: p.name)
def test_deciding_and_serialising_raise_no_audit_event_once_warm(pack):
    done = subprocess.run([sys.executable, "-c", CHILD, str(pack)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["requests"] > 0 and found["denies"] > 0  # the unmet report ran
    assert found["events"] == {}, found["events"]
