"""The console's parts without a server: rule spans, throttling and session clocks, approvals."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pytest

pytest.importorskip("argon2")

from facegate import load_policy
from facegate._approvals import Approval, approval_record, approved_rules, rule_digest
from facegate.console._accounts import Throttle
from facegate.console._editing import check, fingerprint, replaced, rule_path, rule_span
from facegate.console._sessions import Sessions, same_token
from fg_paths import ROOT

CAC = ROOT / "policies" / "cn-cac-2023-draft"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_rule_span_is_its_item_and_replacing_it_with_itself_changes_nothing():
    policy = load_policy(CAC)
    for rule in policy.rules:
        path = rule_path(policy, rule.id)
        span = rule_span(path, rule.id)
        assert span.text.lstrip().startswith(f"- id: {rule.id}"), rule.id
        assert replaced(span, span.text) == path.read_text(encoding="utf-8"), rule.id
        assert span.text.splitlines()[-1].strip(), rule.id  # blank lines before the next rule stay outside


def test_check_of_an_unchanged_rule_reports_no_problem_and_no_change(tmp_path):
    pack = tmp_path / CAC.name
    shutil.copytree(CAC, pack)
    policy = load_policy(pack)
    rule = policy.rules[0]
    span = rule_span(rule_path(policy, rule.id), rule.id)
    before = fingerprint(pack)
    result = check(policy, span, span.text)
    assert result.ok and result.changes == [] and result.failing == 0 and result.cases > 50
    assert fingerprint(pack) == before  # checking never writes the pack


def test_throttle_holds_after_the_limit_and_lets_go_after_the_window(tmp_path):
    clock = Clock()
    t = Throttle(tmp_path / "users.db", max_failures=2, window=60, clock=clock)
    t.failed("user:a")
    assert t.blocked("user:a") == 0
    t.failed("user:a")
    assert t.blocked("user:a") == pytest.approx(60) and t.blocked("user:b") == 0
    clock.now += 59
    assert t.blocked("user:a") == pytest.approx(1)
    clock.now += 1
    assert t.blocked("user:a") == 0
    other = Throttle(tmp_path / "users.db", max_failures=2, window=60, clock=clock)  # another worker process
    t.failed("user:c")
    other.failed("user:c")
    assert t.blocked("user:c") == pytest.approx(60) and other.blocked("user:c") == pytest.approx(60)
    other.succeeded("user:c")
    assert t.blocked("user:c") == 0


def test_sessions_end_when_idle_or_too_old_and_tokens_compare_strictly(tmp_path):
    clock = Clock()
    s = Sessions(tmp_path / "users.db", idle=100, lifetime=250, clock=clock)
    a = s.create("lin")
    clock.now += 99
    assert s.get(a.token) == dataclasses.replace(a, seen=clock.now)
    clock.now += 99
    assert s.get(a.token).user == "lin"  # each request restarts the idle clock
    clock.now += 101
    assert s.get(a.token) is None
    b = s.create("lin")
    for _ in range(3):
        clock.now += 90
        s.get(b.token)
    assert s.get(b.token) is None  # 270 s > lifetime, however active


def test_sessions_are_shared_by_worker_processes_and_kept_as_token_hashes(tmp_path):
    """Two ``Sessions`` on one users file stand for two worker processes of ``facegate serve``:
    a login made on one is valid on the other, a logout on either ends it, and the file holds
    the token's SHA-256, not the token."""
    import sqlite3

    users = tmp_path / "users.db"
    one, two = Sessions(users), Sessions(users)
    a = one.create("lin")
    seen = two.get(a.token)
    assert seen is not None and (seen.user, seen.csrf) == ("lin", a.csrf)
    assert two.get(a.token + "x") is None and two.get("") is None and two.get(None) is None
    with sqlite3.connect(users) as conn:
        stored = [row[0] for row in conn.execute("SELECT token_sha256 FROM console_session")]
    assert stored == [hashlib.sha256(a.token.encode()).hexdigest()]
    two.end(a.token)
    assert one.get(a.token) is None
    b, c = one.create("lin"), one.create("rita")
    two.end_user("lin")
    assert one.get(b.token) is None and one.get(c.token) is not None
    assert not same_token("x", None) and not same_token("", "") and same_token("abc", "abc") and not same_token("abc", "abd")


def test_a_rule_approval_survives_edits_elsewhere_a_pack_approval_does_not(tmp_path):
    pack = tmp_path / CAC.name
    shutil.copytree(CAC, pack)
    policy = load_policy(pack)
    first, second = policy.rules[0], policy.rules[1]
    rec_rule = approval_record(policy, by="rita", role="reviewer", rule=first.id)
    rec_pack = approval_record(policy, by="rita", role="reviewer")
    found = [Approval.from_row({"seq": i + 1, "record": r}) for i, r in enumerate((rec_rule, rec_pack))]
    assert set(approved_rules(policy, found)) == {r.id for r in policy.rules}
    # edit the second rule's message: the pack approval is void, the first rule's approval holds
    path = rule_path(policy, second.id)
    span = rule_span(path, second.id)
    path.write_text(replaced(span, span.text.replace(second.message_en.split()[0], "EDITED", 1)), encoding="utf-8")
    edited = load_policy(pack)
    assert edited.revision != policy.revision
    held = approved_rules(edited, found)
    assert set(held) == {first.id}
    assert rule_digest(next(r for r in edited.rules if r.id == first.id).source) == rec_rule["rule_digest"]
