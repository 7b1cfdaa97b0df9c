"""The console over real HTTP: sessions, roles, CSRF, throttling, saves, sign-off, evidence.

A real server on a free loopback port (see console_server.Client for the cookies).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytest.importorskip("starlette")
pytest.importorskip("argon2")

from console_server import PASSWORD, Client, start

RULE = "cn23-14-sensitive-attributes"
RULE_FILE = "rules/cn23-14-sensitive-attributes.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("console-http"), max_failures=3)
    yield s
    s.stop()


@pytest.fixture
def client(server):
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(server.url))
        return made[-1]

    yield make
    for c in made:
        c.http.close()


def records(server, kind=None):
    from facegate.store import SQLiteStore

    with SQLiteStore(server.store, readonly=True) as store:
        return [row["record"] for row in store.audit.query(kind=kind)]


def test_without_a_session_only_the_login_page_answers(server, client):
    c = client()
    for path in ("/", "/packs/cn-cac-2023-draft", f"/packs/cn-cac-2023-draft/rules/{RULE}/edit", "/audit", "/audit/export"):
        r = c.get(path)
        assert r.status_code == 303 and "/console/login" in r.headers["location"], path
    r = c.post("/packs/cn-cac-2023-draft/approve", {"revision": "x"})
    assert r.status_code == 401
    assert c.get("/login").status_code == 200


def test_cookies_are_secure_httponly_samesite_strict(server, client):
    c = client()
    r = c.login("vera")
    assert r.status_code == 303
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("facegate_console="))
    low = cookie.lower()
    assert "secure" in low and "httponly" in low and "samesite=strict" in low and "path=/console" in low
    assert "content-security-policy" in r.headers


def test_wrong_password_is_refused_and_throttled_even_for_the_right_one_next(server, client):
    from facegate.console._accounts import Accounts

    Accounts(server.users).add("theo", "viewer", PASSWORD)
    c = client()
    for _ in range(3):
        assert c.login("theo", "wrong password!").status_code == 401
    assert c.login("theo").status_code == 429  # the right password, but the window is closed
    assert c.login("vera").status_code == 303  # another user from the same address still can
    events = [r["event"] for r in records(server, "console") if r.get("user") == "theo"]
    assert events.count("login_failed") == 3 and "login_throttled" in events


def test_a_forged_form_without_the_csrf_token_is_refused_and_recorded(server, client):
    c = client()
    c.login("rita")
    revision = re.search(r'name="revision" value="([^"]+)"', c.get("/packs/cn-cac-2023-draft").text).group(1)
    before = len(records(server, "approval"))
    r = c.post("/packs/cn-cac-2023-draft/approve", {"revision": revision, "note": "forged"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = c.post("/packs/cn-cac-2023-draft/approve", {"revision": revision, "note": "forged", "csrf": "not-the-token"})
    assert r.status_code == 403
    assert len(records(server, "approval")) == before
    assert any(r.get("event") == "refused_csrf" for r in records(server, "console"))


def test_a_login_form_from_elsewhere_is_refused(server, client):
    c = client()
    r = c.post("/login", {"username": "vera", "password": PASSWORD, "login_token": "guess", "next": "/"})
    assert r.status_code == 403 and "facegate_console=" not in r.headers.get("set-cookie", "")


def test_a_viewer_reads_but_cannot_edit_or_approve(server, client):
    c = client()
    c.login("vera")
    page = c.get("/packs/cn-cac-2023-draft/provisions/CN23-14")
    assert page.status_code == 200 and "除维护国家安全" in page.text
    assert "/edit" not in page.text and "Approve rule" not in page.text
    assert c.get(f"/packs/cn-cac-2023-draft/rules/{RULE}/edit").status_code == 403
    token = c.csrf()
    text = (server.pack / RULE_FILE).read_text(encoding="utf-8")
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/edit", {"csrf": token, "yaml": "- id: x", "action": "save", "base": "x"})
    assert r.status_code == 403
    assert (server.pack / RULE_FILE).read_text(encoding="utf-8") == text


def _edit_form(c: Client) -> tuple[str, str, str]:
    page = c.get(f"/packs/cn-cac-2023-draft/rules/{RULE}/edit").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    base = re.search(r'name="base" value="([^"]+)"', page).group(1)
    import html

    text = html.unescape(re.search(r'<textarea id="yaml"[^>]*>(.*?)</textarea>', page, re.DOTALL).group(1))
    return token, base, text


def test_check_reports_the_loaders_problems_and_the_cases_an_edit_fails(server, client):
    c = client()
    c.login("eddie")
    token, base, text = _edit_form(c)
    assert text.startswith("  - id: cn23-14-sensitive-attributes") and "# deliberately unguarded" in text
    broken = text.replace('request.operation == "analyze"', 'request.operation == ', 1)
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/check", {"csrf": token, "yaml": broken, "base": base})
    assert r.headers["x-facegate-problems"] != "0" and "editor line" in r.text
    loosened = text.replace('request.operation == "analyze"', 'request.operation == "detect"', 1)
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/check", {"csrf": token, "yaml": loosened, "base": base})
    assert r.headers["x-facegate-problems"] == "0" and int(r.headers["x-facegate-failing"]) > 0
    assert "sensitive" in r.text and "FAILS" in r.text


def test_save_keeps_comments_is_recorded_and_refused_when_the_pack_changed(server, client):
    c = client()
    c.login("eddie")
    path = server.pack / RULE_FILE
    original = path.read_text(encoding="utf-8")
    token, base, text = _edit_form(c)
    edited = text.replace("face recognition may not be used to analyse", "face recognition must not be used to analyse", 1)
    assert edited != text
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/edit", {"csrf": token, "yaml": edited, "base": base, "action": "save", "note": "wording"})
    assert r.status_code == 303, r.text[-500:]
    saved = path.read_text(encoding="utf-8")
    assert saved == original.replace(text, edited)  # only the rule's lines changed
    assert "# yaml-language-server" in saved and "# deliberately unguarded" in saved
    change = [r for r in records(server, "console") if r.get("event") == "rule_saved"][-1]
    assert change["user"] == "eddie" and change["rule"] == RULE and change["revision_before"] != change["revision_after"]
    assert "must not be used" in change["diff"] and change["note"] == "wording"
    # the pack changes underneath an open editor: its save is refused
    token, base, text = _edit_form(c)
    (server.pack / "pack.yaml").write_text((server.pack / "pack.yaml").read_text(encoding="utf-8") + "# touched\n", encoding="utf-8")
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/edit", {"csrf": token, "yaml": text.replace("must not", "may not"), "base": base, "action": "save"})
    assert r.status_code == 409 and "changed on disk" in r.text
    assert path.read_text(encoding="utf-8") == saved
    # a save that would fail cases needs the explicit tick
    token, base, text = _edit_form(c)
    failing = text.replace('request.operation == "analyze"', 'request.operation == "detect"', 1)
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/edit", {"csrf": token, "yaml": failing, "base": base, "action": "save"})
    assert r.status_code == 409 and "would fail" in r.text
    assert path.read_text(encoding="utf-8") == saved


def test_approval_goes_to_the_chain_shows_in_review_and_is_voided_by_an_edit(server, tmp_path, client):
    from facegate import load_policy
    from facegate._approvals import unapproved
    from facegate.store import SQLiteStore

    c = client()
    c.login("rita")
    page = c.get("/packs/cn-cac-2023-draft/provisions/CN23-14").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    revision = re.search(r'name="revision" value="([^"]+)"', page).group(1)
    r = c.post("/packs/cn-cac-2023-draft/approve", {"csrf": token, "revision": revision, "rule": RULE, "note": "checked against the text"})
    assert r.status_code == 303
    approval = records(server, "approval")[-1]
    assert approval["by"] == "rita" and approval["rule"] == RULE and approval["revision"] == revision
    review = c.get("/packs/cn-cac-2023-draft/review").text
    assert "Sign-off" in review and "rita (reviewer)" in review and "checked against the text" in review
    policy = load_policy(server.pack)
    with SQLiteStore(server.store, readonly=True) as store:
        missing = unapproved(policy, store.audit)
        assert RULE not in missing and len(missing) == len(policy.rules) - 1
        assert store.audit.verify().ok
    # a stale revision is refused
    r = c.post("/packs/cn-cac-2023-draft/approve", {"csrf": token, "revision": "sha256:old", "rule": RULE})
    assert r.status_code == 409


def test_audit_browser_searches_and_exports(server, client):
    c = client()
    c.login("vera")
    page = c.get("/audit?kind=console&verify=1")
    assert page.status_code == 200 and "Chain intact" in page.text and "login" in page.text
    export = c.get("/audit/export?kind=console")
    lines = export.text.splitlines()
    assert export.status_code == 200 and lines and all('"kind":"console"' in line for line in lines)
    from facegate.store import verify_lines

    assert verify_lines(lines, gaps_allowed=True).ok
    assert c.get("/audit?since=yesterday").status_code == 200  # a bad date is a message, not a 500
    assert "is not a date" in c.get("/audit?since=yesterday").text


def test_a_disabled_user_is_out_at_the_next_request(server, client):
    from facegate.console._accounts import Accounts

    Accounts(server.users).add("tmp-user", "viewer", PASSWORD)
    c = client()
    c.login("tmp-user")
    assert c.get("/").status_code == 200
    Accounts(server.users).disable("tmp-user")
    assert c.get("/").status_code == 303
    assert c.login("tmp-user").status_code == 401


def test_gate_refuses_a_pack_with_unapproved_rules_when_configured(tmp_path):
    from facegate import ConfigError, Gate, load_policy
    from facegate._approvals import approval_record
    from facegate.store import SQLiteStore

    pack = Path(__file__).resolve().parent.parent / "policies" / "example"
    config = {"policy": str(pack), "recognizer": {"id": "onnx"}, "plugins": {"allow": ["onnx"]},
              "store": {"path": str(tmp_path / "fg.db")}, "approval": {"required": True}}
    with pytest.raises(ConfigError, match="unapproved rule"):
        Gate.from_config(config)
    with pytest.raises(ConfigError, match="needs a `store`"):
        Gate.from_config({k: v for k, v in config.items() if k != "store"})
    policy = load_policy(pack)
    with SQLiteStore(tmp_path / "fg.db") as store:
        store.audit.append(approval_record(policy, by="rita", role="reviewer"))
    with Gate.from_config(config) as gate:
        assert gate is not None
    # a composition: every pack of it must be approved
    facts_pack = pack.parent / "example-facts"
    composed = {**config, "policy": [str(pack), str(facts_pack)]}
    with pytest.raises(ConfigError, match="pack `.*` .* unapproved"):
        Gate.from_config(composed)
    with SQLiteStore(tmp_path / "fg.db") as store:
        store.audit.append(approval_record(load_policy(facts_pack), by="rita", role="reviewer"))
    with Gate.from_config(composed) as gate:
        assert gate is not None


def test_users_command_adds_lists_and_disables(tmp_path, capsys, monkeypatch):
    import io

    from facegate.cli import main

    db = str(tmp_path / "u.db")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "lin", "--role", "reviewer", "--db", db, "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "bo", "--role", "viewer", "--db", db, "--password-stdin"]) == 2
    assert main(["users", "add", "bo", "--role", "boss", "--db", db, "--password-stdin"]) == 2
    assert main(["users", "disable", "lin", "--db", db]) == 0
    assert main(["users", "disable", "nobody", "--db", db]) == 2
    capsys.readouterr()
    assert main(["users", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "lin" in out and "reviewer" in out and "disabled" in out and "bo " not in out
    with sqlite_hash(db) as stored:
        assert stored.startswith("$argon2id$") and PASSWORD not in stored


class sqlite_hash:
    def __init__(self, db):
        import sqlite3

        self.conn = sqlite3.connect(db)

    def __enter__(self):
        return self.conn.execute("SELECT hash FROM console_user WHERE name='lin'").fetchone()[0]

    def __exit__(self, *a):
        self.conn.close()


def test_case_saved_from_the_playground_is_a_valid_case(server, client):
    from facegate import load_policy
    from facegate._cases import run_pack_tests

    c = client()
    c.login("eddie")
    token = c.csrf("/packs/cn-cac-2023-draft/try")
    request = yaml.safe_load((server.pack / "cases" / "cn23-05-consent.yaml").read_text(encoding="utf-8"))["cases"][0]["request"]
    import json

    r = c.post("/packs/cn-cac-2023-draft/cases", {"csrf": token, "case_id": "console-bundled", "request_json": json.dumps(request),
                                                   "exercises": "CN23-05", "description": "saved from the playground"})
    assert r.status_code == 303
    report = run_pack_tests(load_policy(server.pack))
    saved = next(x for x in report.results if x.id == "console-bundled")
    assert saved.passed and saved.decision.effect == "deny"
    r = c.post("/packs/cn-cac-2023-draft/cases", {"csrf": token, "case_id": "console-bundled", "request_json": json.dumps(request)})
    assert r.status_code == 400 and "already used" in r.text


def test_check_replays_recorded_traffic_and_names_what_would_flip(server, client):
    from facegate import load_policy
    from facegate.gate import _decision_record

    policy = load_policy(server.pack)
    cases = yaml.safe_load((server.pack / "cases" / "scenarios.yaml").read_text(encoding="utf-8"))["cases"]
    analysis = next(c for c in cases if c["id"] == "shop-infers-customers-ethnicity")["request"]  # denied by CN23-14 alone
    detection = {"operation": "detect", "purpose": "marketing", "jurisdiction": "CN"}
    assert [d["rule"] for d in policy.decide(analysis).determining] == [RULE]
    audit = server.app.state.console.store.audit
    for request in (analysis, detection):
        audit.append(_decision_record(policy.decide(request), request))
    c = client()
    c.login("eddie")
    token, base, text = _edit_form(c)
    loosened = text.replace('request.operation == "analyze"', 'request.operation == "verify"', 1)
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/check", {"csrf": token, "yaml": loosened, "base": base})
    replayed = re.search(r"(\d+) recent recorded decision\(s\) of this pack replayed; (\d+) would be decided differently", r.text)
    assert replayed and int(replayed.group(1)) >= 2 and int(replayed.group(2)) >= 1
    assert "deny (forbidden): cn23-14-sensitive-attributes → " in r.text  # the analysis; the detection is unchanged
    assert r.text.count("record #") == int(replayed.group(2))


def test_playground_decides_explains_and_shows_remedies_when_the_build_has_them(server, client):
    import importlib
    import importlib.util

    c = client()
    c.login("vera")
    token = c.csrf("/packs/cn-cac-2023-draft/try")
    cases = yaml.safe_load((server.pack / "cases" / "cn23-05-consent.yaml").read_text(encoding="utf-8"))["cases"]
    bundled = next(x for x in cases if x["id"] == "bundled-consent-is-not-separate")
    import json

    r = c.post("/packs/cn-cac-2023-draft/try", {"csrf": token, "request_json": json.dumps(bundled["request"])})
    assert r.status_code == 200 and 'class="verdict deny"' in r.text and "(no_permit)" in r.text
    assert "Unmet provisions" in r.text and "cn23-05-consent" in r.text
    has_remedies = importlib.util.find_spec("facegate.explain") is not None and hasattr(
        importlib.import_module("facegate.explain"), "find_remedies")
    if has_remedies:
        assert '<ol class="remedies">' in r.text and "permit" in r.text
    else:
        assert "Not available in this build" in r.text
    # the same request from the generated form's fields
    fields = {"csrf": token, "operation": "verify", "purpose": "identity_verification", "jurisdiction": "CN",
              "consent.type": "bundled", "consent.given_by": "subject", "consent.purposes": "identity_verification",
              "consent.withdrawn": "false", "place.type": "business_premises", "place.signage": "true"}
    r = c.post("/packs/cn-cac-2023-draft/try", fields)
    assert 'class="verdict deny"' in r.text
    assert 'value="bundled" selected' in r.text  # the form keeps what was tried
    r = c.post("/packs/cn-cac-2023-draft/try", {**fields, "subject.age": "forty"})
    assert "is not a whole number" in r.text and "verdict" not in r.text


def test_an_oversized_form_is_refused_before_it_is_read(server, client):
    c = client()
    c.login("eddie")
    token = c.csrf()
    r = c.post(f"/packs/cn-cac-2023-draft/rules/{RULE}/check", {"csrf": token, "yaml": "x" * (3 * 1024 * 1024)})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"y" * 100_000

    headers = {**c._headers(), "content-type": "application/x-www-form-urlencoded", "x-csrf-token": token}
    r = c.http.post(server.url + f"/packs/cn-cac-2023-draft/rules/{RULE}/check", content=chunks(), headers=headers)
    assert r.status_code == 413
