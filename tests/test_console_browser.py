"""The console in a real browser (Playwright driving Debian's headless Chromium), as a person uses it.

Screenshots of the main pages go to ``tests/artifacts/console/`` (git-ignored); with
``FACEGATE_DOCS_SCREENSHOTS=1`` they are also written to ``docs/images/console/`` for
docs/legal-teams.md.  Without Chromium the tests skip -- except under CI, where ``.ci/run``
installs it, so a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from console_server import PASSWORD, start

from fg_paths import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts" / "console"
DOCS_SHOTS = ROOT / "docs" / "images" / "console"
PACK = "cn-cac-2023-draft"
RULE = "cn23-14-sensitive-attributes"

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("console-browser"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def as_user(browser, server):
    contexts = []

    def login(name: str):
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(server.url + "/")
        assert "/console/login" in page.url  # nothing but the login page without a session
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(server.url + "/")
        return page

    yield login
    for ctx in contexts:
        ctx.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)
    if os.environ.get("FACEGATE_DOCS_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SHOTS / f"{name}.png"), full_page=False)


def test_log_in_and_open_a_provision(as_user, server, browser):
    ctx = browser.new_context()
    anonymous = ctx.new_page()
    anonymous.goto(server.url + "/login")
    shot(anonymous, "01-login")
    ctx.close()
    page = as_user("vera")
    assert page.get_by_role("link", name="China — CAC draft").is_visible()
    page.get_by_role("link", name="China — CAC draft").click()
    shot(page, "02-pack")
    page.get_by_role("link", name="CN23-14", exact=True).click()
    assert page.locator("blockquote[lang=zh]").first.inner_text().find("不得利用人脸识别技术分析个人种族") >= 0
    assert "Sensitive-attribute analysis" in page.get_by_role("heading", name="cn23-14-sensitive-attributes").inner_text()
    assert page.get_by_text("analyze").first.is_visible()  # the condition in plain words
    assert page.get_by_text("params.sensitive_attributes").first.is_visible()  # its parameters
    shot(page, "03-provision")


def test_playground_on_a_denied_request_names_its_provisions(as_user, server):
    page = as_user("vera")
    page.goto(server.url + f"/packs/{PACK}/try")
    page.get_by_label("operation (required)").select_option("analyze")
    page.get_by_label("purpose (required)").select_option("marketing")
    page.get_by_label("jurisdiction").fill("CN")
    page.get_by_role("group", name="attributes").get_by_label("ethnicity").check()
    page.get_by_role("button", name="Decide").click()
    result = page.locator("#result")
    assert "DENY" in result.get_by_role("heading", level=2).inner_text()
    determining = result.locator("ul.determining > li")
    provisions = {determining.nth(i).get_by_role("link").inner_text() for i in range(determining.count())}
    assert "CN23-14" in provisions
    assert result.get_by_text("Unmet provisions").is_visible()
    shot(page, "04-try-denied")


def test_an_edit_that_fails_a_case_is_flagged_before_saving(as_user, server):
    path = server.pack / "rules" / f"{RULE}.yaml"
    before = path.read_text(encoding="utf-8")
    page = as_user("eddie")
    page.goto(server.url + f"/packs/{PACK}/provisions/CN23-14")
    page.get_by_role("link", name=f"Edit rule {RULE}").click()
    editor = page.get_by_label("Rule YAML")
    text = editor.input_value()
    editor.fill(text.replace('request.operation == "analyze"', 'request.operation == "detect"', 1))
    flagged = page.locator("#diagnostics").get_by_text("cases would fail")
    flagged.wait_for()
    assert page.locator("#diagnostics table.changes tr.bad").count() >= 1
    shot(page, "05-edit-flagged")
    editor.fill(text.replace("effect: forbid", "effect: forbidden", 1))
    page.locator("#diagnostics").get_by_text("the pack would not load").wait_for()
    assert "editor line" in page.locator("#diagnostics").inner_text()
    assert path.read_text(encoding="utf-8") == before  # nothing was saved


def test_a_reviewer_approves_and_it_shows_in_review_and_verifies(as_user, server):
    page = as_user("rita")
    page.goto(server.url + f"/packs/{PACK}/provisions/CN23-14")
    page.get_by_label("Note").first.fill("read against 北京商报 text")
    page.get_by_role("button", name=f"Approve rule {RULE}").click()
    assert page.get_by_text("approved by rita").first.is_visible()
    page.goto(server.url + f"/packs/{PACK}/review")
    signoff = page.locator("#sign-off")
    assert signoff.count() == 1
    assert "rita (reviewer)" in page.content() and "read against 北京商报 text" in page.content()
    page.locator("#sign-off").scroll_into_view_if_needed()
    shot(page, "06-review-signoff")
    run = subprocess.run([sys.executable, "-m", "facegate.cli", "audit", "verify", "--db", str(server.store)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0 and "chain intact" in run.stdout
    shown = subprocess.run([sys.executable, "-m", "facegate.cli", "audit", "show", "--db", str(server.store), "--kind", "approval", "--json"],
                           capture_output=True, text=True, check=False)
    assert '"by": "rita"' in shown.stdout and RULE in shown.stdout


def test_a_viewer_cannot_edit(as_user, server):
    page = as_user("vera")
    page.goto(server.url + f"/packs/{PACK}/provisions/CN23-14")
    assert page.get_by_role("link", name=f"Edit rule {RULE}").count() == 0
    assert page.get_by_role("button", name=f"Approve rule {RULE}").count() == 0
    response = page.goto(server.url + f"/packs/{PACK}/rules/{RULE}/edit")
    assert response.status == 403 and page.get_by_text("needs the `editor` role").is_visible()


def test_a_forged_form_without_the_csrf_token_is_refused(as_user, server):
    path = server.pack / "rules" / f"{RULE}.yaml"
    before = path.read_text(encoding="utf-8")
    page = as_user("eddie")
    page.goto(server.url + "/")
    # a form as another site would post it: the right fields, no CSRF token (the cookie rides along)
    with page.expect_navigation():
        page.evaluate("""([action]) => {
            const f = document.createElement('form'); f.method = 'post'; f.action = action;
            for (const [k, v] of [['yaml', '- id: x'], ['action', 'save'], ['base', 'x']]) {
                const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
            document.body.appendChild(f); f.submit(); }""", [server.url + f"/packs/{PACK}/rules/{RULE}/edit"])
    assert page.get_by_role("heading", name="Form refused").is_visible()
    assert path.read_text(encoding="utf-8") == before


def test_evidence_search_by_provision_and_verify(as_user, server):
    import yaml

    from facegate import load_policy
    from facegate.gate import _decision_record

    policy = load_policy(server.pack)
    audit = server.app.state.console.store.audit
    cases = yaml.safe_load((server.pack / "cases" / "scenarios.yaml").read_text(encoding="utf-8"))["cases"]
    for case in cases[:8]:
        audit.append(_decision_record(policy.decide(case["request"]), case["request"]))
    page = as_user("vera")
    page.goto(server.url + "/audit")
    page.get_by_label("Provision").fill("CN23-14")
    page.get_by_label("Decision").select_option("deny")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("tbody tr")
    assert rows.count() >= 1
    for i in range(rows.count()):
        assert "CN23-14" in rows.nth(i).locator("td").nth(5).inner_text()
        assert rows.nth(i).locator("td").nth(3).inner_text() == "deny"
    page.goto(server.url + "/audit?kind=decision")
    page.get_by_role("link", name="Verify the chain").click()
    assert page.get_by_text("Chain intact").is_visible()
    shot(page, "07-evidence")


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button')]
    .filter(el => el.tagName === 'BUTTON' ? !el.innerText.trim() && !el.getAttribute('aria-label')
                                          : el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map(el => el.name || el.id || el.outerHTML.slice(0, 60))"""


def test_every_control_on_the_main_pages_is_labelled(as_user, server):
    page = as_user("ada")  # admin: every control is shown
    for path in ("/", f"/packs/{PACK}", f"/packs/{PACK}/provisions/CN23-14", f"/packs/{PACK}/try?case=bundled-consent-is-not-separate",
                 f"/packs/{PACK}/rules/{RULE}/edit", "/audit"):
        page.goto(server.url + path)
        assert page.evaluate(UNLABELLED) == [], path
    page.goto(server.url + f"/packs/{PACK}/try?case=bundled-consent-is-not-separate")
    page.get_by_role("button", name="Decide").click()
    assert page.evaluate(UNLABELLED) == []  # the result, with its save-as-case form


def test_the_keyboard_alone_logs_in_and_reaches_the_editor(browser, server):
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(server.url + "/login")
        for _ in range(6):
            if page.evaluate("document.activeElement.id") == "username":
                break
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "username"
        page.keyboard.type("eddie")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.goto(server.url + f"/packs/{PACK}/provisions/CN23-14")
        for _ in range(200):
            page.keyboard.press("Tab")
            if (page.evaluate("document.activeElement.innerText") or "").startswith(f"Edit rule {RULE}"):
                break
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith(f"/rules/{RULE}/edit")
        assert page.evaluate("document.activeElement.id") != "yaml"  # Tab does not start inside the editor
    finally:
        ctx.close()
