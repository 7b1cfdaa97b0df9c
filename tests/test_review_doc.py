"""The review document (``facegate docs``): current, deterministic, escaped, and readable."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import facegate
from facegate import review as _review
from facegate.cli import main
from facegate.errors import PolicyError

ROOT = Path(__file__).resolve().parent.parent
CAC = ROOT / "policies" / "cn-cac-2023-draft"
EXAMPLE = ROOT / "policies" / "example"
STALE = "the committed review document is stale: run `facegate docs policies/cn-cac-2023-draft` and commit the result"


@pytest.fixture(scope="module")
def cac() -> facegate.Policy:
    return facegate.load_policy(CAC)


@pytest.fixture(scope="module")
def rendered(cac: facegate.Policy) -> tuple[str, str]:
    return _review.render(cac)


def test_committed_review_is_current(rendered: tuple[str, str]) -> None:
    markdown, page = rendered
    assert (CAC / "REVIEW.md").read_text(encoding="utf-8") == markdown, STALE
    assert (CAC / "REVIEW.html").read_text(encoding="utf-8") == page, STALE


def test_output_is_deterministic_and_written_where_asked(rendered: tuple[str, str], tmp_path: Path) -> None:
    written = _review.write_review(facegate.load_policy(CAC), tmp_path / "out")  # a second, independent run
    assert [p.name for p in written] == ["REVIEW.md", "REVIEW.html"]
    assert (written[0].read_text(encoding="utf-8"), written[1].read_text(encoding="utf-8")) == rendered
    assert not re.search(r"\d{2}:\d{2}:\d{2}|decision_id|[0-9a-f]{8}-[0-9a-f]{4}-", rendered[0])


def test_cli_docs_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", str(CAC), "--out", str(tmp_path)]) == 0
    assert "REVIEW.md" in capsys.readouterr().out
    assert (tmp_path / "REVIEW.html").is_file()


def test_draft_notice_comes_first(rendered: tuple[str, str]) -> None:
    markdown, page = rendered
    assert "NOT REVIEWED BY A LAWYER" in markdown[:400]
    assert "未经律师审阅" in markdown[:2000]
    assert page.index('class="notice"') < page.index("<h2")


def test_every_provision_rule_case_parameter_and_question_appears(cac: facegate.Policy, rendered: tuple[str, str]) -> None:
    markdown, page = rendered
    from facegate._cases import load_cases

    names = [p.provision for p in cac.pack.provisions] + [r.id for r in cac.rules] + list(cac.pack.parameters)
    names += [case["id"] for case, _, _ in load_cases(CAC)] + [q.id for q in _review.load_questions(CAC)]
    for name in names:
        assert name in markdown, name
        assert name in page, name
    for prov in cac.pack.provisions:
        if prov.text.get("zh"):
            assert prov.text["zh"].split("\n")[0].strip() in page, prov.provision  # the verbatim Chinese text
        if not prov.enforceable:
            assert " ".join(prov.reason.split()[:4]) in markdown


def test_law_text_sits_beside_the_english(rendered: tuple[str, str]) -> None:
    page = rendered[1]
    block = page.split('id="cn23-14"', 1)[1].split("<h4", 1)[0]
    assert '<div class="law"><div lang="zh">' in block and '<div lang="en">' in block
    assert "不得利用人脸识别技术分析个人种族" in block and "no organisation or individual may use face recognition" in block


def test_html_has_no_script_and_inline_style_only(rendered: tuple[str, str]) -> None:
    page = rendered[1].lower()
    assert "<script" not in page and "javascript:" not in page
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page)
    assert "<style>" in page and "<link" not in page


@pytest.mark.parametrize(
    ("cel", "words"),
    [
        ('has(request.consent.type) && request.consent.type == "separate"', "consent type is “separate”"),
        ('has(request.consent) && has(request.consent.type) && request.consent.type == "separate"', "consent type is “separate”"),
        ("!(has(request.subject) && has(request.subject.age))", "subject's age is not stated"),
        ("!(has(request.actor) && has(request.actor.pia) && has(request.actor.pia.completed) && request.actor.pia.completed)",
         "impact assessment completed is not true (or not stated)"),
        ("!(has(request.place.signage) && request.place.signage)", "notice signs present is not true (or not stated)"),
        ('!(has(request.actor.filing) && request.actor.filing == "filed")', "filing status is not “filed” (or not stated)"),
        ("request.subject.age < params.minor_age", "subject's age is under parameter `minor_age` (14)"),
        ("request.actor.stored_persons > 10000", "number of people whose face data the actor stores is more than 10,000"),
        ("!has(request.subject.age)", "subject's age is not stated"),
        ('request.operation in ["verify", "identify"]', "operation is one of “verify”, “identify”"),
        ('request.operation in ["verify"]', "operation is “verify”"),
        ("request.purpose in request.consent.purposes", "declared purpose is among consented purposes"),
        ("size(request.legal_basis.citation) > 0", "legal citation is not empty"),
        ("request.attributes.exists(a, a in params.minor_age)", "any of the attributes to infer is one of parameter `minor_age` (14)"),
        ('request.jurisdiction.startsWith("CN-")', "jurisdiction starts with “CN-”"),
        ("variables.processes", "the request processes facial information"),
        ("!variables.processes", "NOT: the request processes facial information"),
        (
            'request.operation == "verify" || request.operation == "enroll" && request.subject.age >= 14',
            "either operation is “verify”, or (operation is “enroll” and subject's age is at least 14)",
        ),
        ("request.review.human_review == false", "human review is not true"),
    ],
)
def test_plain_words(cel: str, words: str) -> None:
    assert _review.plain(cel, {"minor_age": 14}, {"processes": "the request processes facial information"}) == words


@pytest.mark.parametrize(
    "cel",
    ["request.attributes.map(a, a + 1)", 'has(request.subject.age) ? "known" : "unknown"', "request.subject.age + 1 > 3", "timestamp(1)", '"unterminated'],
)
def test_unknown_shapes_fall_back_to_cel_in_code_style(cel: str) -> None:
    assert _review.plain(cel) == f"`{' '.join(cel.split())}`"


def test_every_condition_of_the_cac_pack_reads_in_plain_words(cac: facegate.Policy) -> None:
    var_docs = {v["name"]: v.get("description", "") for v in cac.pack.variables}
    renderer = _review.PlainRenderer(cac.pack.parameters, var_docs)
    texts = [c.text for r in cac.rules for c in (*r.when, *r.unless)] + [v["expression"] for v in cac.pack.variables]
    for text in texts:
        renderer.render(text)
    assert renderer.fallbacks == 0


def _hostile_example(tmp_path: Path) -> Path:
    pack = tmp_path / "hostile"
    shutil.copytree(EXAMPLE, pack)
    rules = pack / "rules" / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    text = text.replace('message: {en: "verification with consent"', 'message: {en: "<script>alert(1)</script> & \\"quoted\\""', 1)
    text = text.replace('text: {en: "No face recognition in toilets or changing rooms."',
                        'text: {en: "<img src=x onerror=alert(1)> | *bold* [link](javascript:alert(1))"', 1)
    rules.write_text(text, encoding="utf-8")
    return pack


def test_html_and_markdown_escape_pack_content(tmp_path: Path) -> None:
    markdown, page = _review.render(facegate.load_policy(_hostile_example(tmp_path)))
    assert "<script" not in page and "<img" not in page and "javascript:alert" not in page.replace("javascript:alert(1))", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert "\\<script\\>" in markdown and "\\<img" in markdown and "\\[link\\]" in markdown
    assert 'href="javascript' not in page


def test_signing_off_a_rule_changes_the_revision_and_the_document(tmp_path: Path) -> None:
    pack = tmp_path / "cn-cac-2023-draft"
    shutil.copytree(CAC, pack)
    before = facegate.load_policy(pack)
    rule_file = pack / "rules" / "cn23-06-private-spaces.yaml"
    text = rule_file.read_text(encoding="utf-8")
    marked = text.replace("    review: {status: draft}\n", "    review: {status: reviewed, reviewer: A. Lawyer, date: 2026-01-15}\n")
    marked = marked.replace("    review: {status: reviewed, reviewer: A. Lawyer, date: 2026-01-15}\n", "    review: {status: draft}\n", 1)  # the provision entry
    rule_file.write_text(marked, encoding="utf-8")
    after = facegate.load_policy(pack)
    assert after.revision != before.revision
    markdown, _ = _review.render(after)
    assert "1 of 36 rules reviewed" in markdown
    assert "**reviewed** · reviewer: A. Lawyer · date: 2026-01-15" in markdown
    assert after.revision in markdown


def test_malformed_open_questions_are_a_located_policy_error(tmp_path: Path) -> None:
    pack = tmp_path / "cn-cac-2023-draft"
    shutil.copytree(CAC, pack)
    (pack / "open-questions.yaml").write_text("questions:\n  - id: Q1\n    wording: missing en\n", encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        _review.render(facegate.load_policy(pack))
    problem = err.value.problems[0]
    assert problem.file.endswith("open-questions.yaml") and problem.line == 2 and problem.pointer == "/questions/0"


def test_a_pack_without_questions_or_variables_still_renders(tmp_path: Path) -> None:
    pack = tmp_path / "example"
    shutil.copytree(EXAMPLE, pack)
    markdown, page = _review.render(facegate.load_policy(pack))
    assert "## Open questions" not in markdown
    assert "EX-0" in markdown and "purpose clause" in page
