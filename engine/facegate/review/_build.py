"""Building the review document from a loaded pack, its cases and its open questions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._cases import Report, load_cases, run_pack_tests
from .._yaml import load_yaml
from ..policy import Policy
from ._blocks import (
    B,
    Bilingual,
    Block,
    C,
    Heading,
    Inline,
    Items,
    L,
    Notice,
    Para,
    T,
    Table,
    _fold,
)
from ._plain import PlainRenderer, _join, _value
from ._questions import Question, load_questions

# ------------------------------------------------------------------------------------------------
# building the document

#: Column labels of the law text for v1 packs (Chinese source, English rendering).
V1_LABELS = {"zh": "中文（原文）", "en": "English (rendering)"}


def _law(pack: Any, text: Mapping[str, Any]) -> Bilingual:
    """The law text in the pack's languages: v1 packs Chinese beside English; v2 packs the first
    declared language as the text, the others as renderings."""
    if pack.format.endswith("/v1"):
        return Bilingual([(lang, V1_LABELS[lang], (str(text.get(lang, "")).strip() if lang == "zh" else _clean(str(text.get(lang, ""))))) for lang in ("zh", "en")])
    cols = []
    for i, lang in enumerate(pack.languages):
        if lang in text:
            cols.append((lang, f"Text ({lang})" if i == 0 else f"Rendering ({lang})", _clean(str(text[lang]))))
    return Bilingual(cols)


def _title(pack: Any, title: Mapping[str, str]) -> Inline:
    if pack.format.endswith("/v1"):
        return [T(title.get("zh", ""))] + ([T(" — ")] if "zh" in title else []) + [T(title.get("en", ""))]
    return _join([[T(title[lang])] for lang in pack.languages if lang in title], " — ")


def _grades(pack: Any) -> dict[str, str]:
    return {k: str(v.get(pack.language) or v.get("en") or next(iter(v.values()))) for k, v in pack.evidence_grades.items()}


def _grade_codes(grade: Any) -> str:
    """`A` or `A, O, S` (a provision may cite several grades), `—` when none is stated."""
    if grade is None:
        return "—"
    return str(grade) if isinstance(grade, str) else ", ".join(str(g) for g in grade)


def _grade_line(pack: Any, grade: Any) -> str:
    if grade is None:
        return "— — not stated"
    grades = _grades(pack)
    names = [grade] if isinstance(grade, str) else list(grade)
    return "; ".join(f"{g} — {grades.get(str(g), 'not stated')}" for g in names)

EFFECTS = {
    "forbid": "forbid — denies the request when it applies (overrides every permit)",
    "permit": "permit — allows the request when it applies and nothing forbids it",
    "obligation": "obligation — attaches duties to a permitted request",
    "advice": "advice — a warning that never blocks",
}

MODES = {
    "enforce": "enforce",
    "warn": "warn — a forbid that only warns, never blocks",
    "audit": "audit — evaluated and recorded only",
}


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _article(number: str | None, verified: bool, note: str | None = None) -> str:
    text = "number unknown" if number is None else f"Art. {number}" + ("" if verified else " (numbering unverified)")
    return text + (f" — {_fold(note)}" if note and _fold(note) != text else "")


def _review_line(review: Mapping[str, Any]) -> Inline:
    status = review.get("status", "not stated")
    reviewer = review.get("reviewer") or "—"
    date = review.get("date") or "—"
    spans: Inline = [B(str(status)), T(f" · reviewer: {reviewer} · date: {date}")]
    if review.get("notes"):
        spans += [T(" · "), *_prose(str(review["notes"]))]
    return spans


def _prose(text: str) -> Inline:
    """Folded free text from the pack; `backticked` words become code spans."""
    parts = _fold(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: keep the text as it is
        return [T(_fold(text))]
    return [C(p) if i % 2 else T(p) for i, p in enumerate(parts) if p]


def _clean(text: str) -> str:
    """Fold YAML-folded text into paragraphs separated by blank lines."""
    paras = [_fold(p) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paras if p)


def _rel(file: str, root: Path) -> str:
    parts = Path(file).parts
    name = root.resolve().name
    return str(Path(*parts[1:])) if len(parts) > 1 and parts[0] == name else file


def _article_notes(root: Path, policy: Policy) -> dict[str, str]:
    """``article.note`` of each provision (the loaded :class:`Provision` does not keep it)."""
    notes: dict[str, str] = {}
    for path in [root / "pack.yaml", *sorted(root.glob("rules/*.yaml")), *sorted(root.glob("rules/*.yml"))]:
        if not path.is_file():
            continue
        doc, _ = load_yaml(path)
        for spec in (doc.data.get("provisions", []) if doc is not None and isinstance(doc.data, dict) else []):
            note = spec.get("article", {}).get("note") if isinstance(spec, dict) else None
            if isinstance(note, str):
                notes[str(spec.get("provision"))] = note
    for rule in policy.rules:  # provisions known only through their rules: the first rule's note
        note = rule.source["article"].get("note")
        if isinstance(note, str):
            notes.setdefault(rule.provision, note)
    return notes


def build(policy: Policy, approvals: Sequence[Any] | None = None) -> list[Block]:
    """The document; ``approvals`` (:class:`facegate._approvals.Approval`, from the audit chain)
    adds a sign-off section -- left out of the committed REVIEW files, which carry no chain."""
    pack = policy.pack
    meta = pack.meta
    root = pack.root if pack.root.is_dir() else pack.root.parent
    report = run_pack_tests(policy)
    cases = {c["id"]: c for c, _, _ in load_cases(root)}
    questions = load_questions(root)
    var_docs = {v["name"]: _fold(v.get("description") or v["name"].replace("_", " ")) for v in pack.variables}
    renderer = PlainRenderer(pack.parameters, var_docs)
    notes = _article_notes(root, policy)
    rules_by_prov: dict[str, list[Any]] = {}
    for rule in policy.rules:
        rules_by_prov.setdefault(rule.provision, []).append(rule)

    doc: list[Block] = []
    doc.append(Heading(1, [T("Legal review: " + meta["title"])], "top"))
    notice = meta.get("review_notice", {})
    unreviewed = [r.id for r in policy.rules if r.review.get("status") != "reviewed"]
    notice_title = "DRAFT — NOT REVIEWED BY A LAWYER" if unreviewed else "All rules are marked reviewed"
    langs = ("en", "zh") if pack.format.endswith("/v1") else pack.languages
    doc.append(Notice(notice_title, [(lang, _fold(notice[lang])) for lang in langs if lang in notice]))
    if not report.passed:
        failing = sum(not r.passed for r in report.results)
        doc.append(Notice("CASES FAILING OR PROVISIONS NOT COVERED — DO NOT SIGN OFF", [("en", (
            f"{failing} of {len(report.results)} cases fail and provision coverage is {report.coverage_percent:.0f} %. "
            "This document describes a pack whose own tests do not pass; see the status section below."))]))
    doc.append(Para([T("Generated by "), C("facegate docs"), T(" from the pack's YAML files. Do not edit it: edit the rules or cases "
                    "and regenerate. A rule is signed off by setting its "), C("review"), T(" block (status, reviewer, date); that changes the "
                    "pack's revision below.")], "meta"))

    doc += _pack_section(policy, meta)
    doc += _status_section(policy, report, unreviewed)
    if approvals is not None:
        doc += _signoff_section(policy, approvals)
    doc += _legend_section(pack)

    doc.append(Heading(2, [T("Provisions")], "provisions"))
    for prov in pack.provisions:
        asked = [q.id for q in questions if prov.provision in q.provisions]
        doc += _provision_section(prov, notes.get(prov.provision), asked, rules_by_prov.get(prov.provision, []), report, cases, renderer, root, pack)

    doc += _facts_section(pack)
    doc += _parameters_section(pack.parameters, pack.parameter_docs)
    doc += _variables_section(pack.variables, renderer)
    doc += _questions_section(questions)
    return doc


def _pack_section(policy: Policy, meta: Mapping[str, Any]) -> list[Block]:
    inst = meta.get("instrument", {})
    title = inst.get("title", {})
    rows: list[list[Inline]] = [
        [[T("Pack")], [C(policy.id), T(" version " + policy.version)]],
        [[T("Revision")], [C(policy.revision)]],
        [[T("Instrument")], _title(policy.pack, title)],
    ]
    for key, label in (("issuer", "Issuer"), ("issued", "Issued"), ("status", "Status")):
        if key in inst:
            rows.append([[T(label)], [T(str(inst[key]))]])
    if "url" in inst:
        rows.append([[T("Official URL")], [L(inst["url"])]])
    rows.append([[T("Jurisdiction")], [T(meta["jurisdiction"])]])
    valid = f"from {meta['valid_from']}" + (f" until {meta['valid_until']}" if meta.get("valid_until") else "")
    rows.append([[T("Pack valid")], [T(valid)]])
    if "legal_basis" in inst:
        rows.append([[T("Legal basis")], _prose(inst["legal_basis"])])
    out: list[Block] = [Heading(2, [T("The pack")], "pack"), Table([[T("")], [T("")]], rows)]
    if inst.get("notes"):
        out.append(Para([B("Notes on the instrument: "), *_prose(inst["notes"])]))
    if meta.get("description"):
        out.append(Para([B("How the pack encodes it: "), *_prose(meta["description"])]))
    return out


def _status_section(policy: Policy, report: Report, unreviewed: list[str]) -> list[Block]:
    provisions = policy.pack.provisions
    enforced = sum(p.enforceable for p in provisions)
    passed = sum(r.passed for r in report.results)
    reviewed = len(policy.rules) - len(unreviewed)
    summary: Inline = [
        T(f"{reviewed} of {len(policy.rules)} rules reviewed. {len(provisions)} provisions: {enforced} enforced per request, "
          f"{len(provisions) - enforced} not enforceable. {len(report.results)} cases, {passed} passing; provision coverage "
          f"{report.coverage_percent:.0f} %."),
    ]
    rows: list[list[Inline]] = []
    cov = {c.provision: c for c in report.coverage}
    for p in provisions:
        rules = [r for r in policy.rules if r.provision == p.provision]
        statuses = sorted({str(r.review.get("status")) for r in rules} or {str(p.review.get("status", "—"))})
        c = cov[p.provision]
        if not p.enforceable:
            covered = "not enforceable"
        else:
            covered = f"{'covered' if c.covered else 'NOT COVERED'} ({len(c.decisive_cases)} decisive, {len(c.boundary_cases)} boundary)"
        rows.append([
            [("link", f"#{_anchor(p.provision)}|{p.provision}")],
            [T(_article(p.article, p.article_verified))],
            [T(_grade_codes(p.text.get("grade")))],
            [T(str(len(rules)))],
            [T(covered)],
            [T(", ".join(statuses))],
        ])
    out: list[Block] = [Heading(2, [T("Sign-off status")], "status"), Para(summary),
                        Table([[T("Provision")], [T("Article")], [T("Grade")], [T("Rules")], [T("Cases")], [T("Review")]], rows)]
    failing = [r for r in report.results if not r.passed]
    if failing:
        out.append(Para([B("Failing cases: "), T("; ".join(f"{r.id} ({', '.join(r.failures)})" for r in failing))], "warn"))
    return out


def _legend_section(pack: Any) -> list[Block]:
    return [
        Heading(2, [T("How to read this document")], "legend"),
        Para([T("Every request is denied unless a permit rule applies and no forbid rule does. A forbid whose condition cannot "
                "be evaluated (a fact is missing) applies anyway — the pack fails closed — and the case lists it under errors. "
                "Conditions are shown in plain words with the CEL text beneath; “or not stated” means an absent fact counts "
                "against the request.")]),
        Items([[B(k), T(" — " + v)] for k, v in _grades(pack).items()]),
        Items([[B(k), T(" — " + v.split(" — ", 1)[1])] for k, v in EFFECTS.items()]),
    ]


def _provision_section(prov: Any, article_note: str | None, asked: list[str], rules: list[Any], report: Report, cases: Mapping[str, Any],
                       renderer: PlainRenderer, root: Path, pack: Any) -> list[Block]:
    head = prov.provision + (f" — {prov.title}" if prov.title else "")
    out: list[Block] = [Heading(3, [T(head)], _anchor(prov.provision))]
    text = prov.text
    facts: list[Inline] = [
        [B("Article: "), T(_article(prov.article, prov.article_verified, article_note))],
        [B("Evidence grade: "), T(_grade_line(pack, text.get("grade")))],
    ]
    if text.get("source"):
        facts.append([B("Sources: "), *_prose(str(text["source"]))])
    if prov.enforceable:
        facts.append([B("Enforced per request: "), T(f"yes — {len(rules)} rule{'s' if len(rules) != 1 else ''}")])
    else:
        facts.append([B("Enforced per request: "), T("no — "), *_prose(prov.reason)])
    if prov.review:
        facts.append([B("Provision review: ")] + _review_line(prov.review))
    if asked:
        facts.append([B("Open questions: "), *_join([[("link", f"#{_anchor(q)}|{q}")] for q in asked], ", ")])
    out.append(Items(list(facts)))
    out.append(_law(pack, text))
    if text.get("note"):
        out.append(Para([B("Note on the text: "), *_prose(str(text["note"]))]))
    for rule in rules:
        out += _rule_section(rule, prov, article_note, renderer, root, pack)
    if prov.enforceable:
        out += _cases_section(prov.provision, rules, report, cases)
    return out


def _rule_section(rule: Any, prov: Any, prov_note: str | None, renderer: PlainRenderer, root: Path, pack: Any) -> list[Block]:
    out: list[Block] = [Heading(4, [T("Rule "), C(rule.id)] + ([T(" — " + rule.title)] if rule.title else []), _anchor("rule-" + rule.id))]
    facts: list[Inline | tuple[Inline, list[Inline]]] = [
        [B("Effect: "), T(EFFECTS[rule.effect]), T(" · "), B("mode: "), T(MODES.get(rule.mode, rule.mode))],
    ]
    note = rule.source["article"].get("note")
    if note in (prov_note, "best estimate", "number unknown"):
        note = None
    if rule.article != prov.article or rule.article_verified != prov.article_verified or note:
        facts.append([B("Article: "), T(_article(rule.article, rule.article_verified, note))])
    when = [renderer.render(c.text) + [T(" — ")] + [C(_fold(c.text))] for c in rule.when]
    facts.append(([B("Applies when" + (" all of:" if len(when) > 1 else ":"))], when))
    if rule.unless:
        unless = [renderer.render(c.text) + [T(" — ")] + [C(_fold(c.text))] for c in rule.unless]
        facts.append(([B("Except when" + (" all of:" if len(unless) > 1 else ":"))], unless))
    langs = ("en", "zh") if pack.format.endswith("/v1") else pack.languages
    facts.append(([B("Message:")], [_prose(rule.messages[lang]) for lang in langs if rule.messages.get(lang)]))
    if rule.obligations:
        obs: list[Inline] = []
        for ob in rule.obligations:
            line: Inline = [C(ob["type"])]
            if "days" in ob:
                line.append(T(f" ({ob['days']} days)"))
            if ob.get("note"):
                line += [T(" — "), *_prose(ob["note"])]
            obs.append(line)
        facts.append(([B("Obligations:")], obs))
    if rule.source.get("notes"):
        facts.append([B("Encoding notes: "), *_prose(rule.source["notes"])])
    facts.append([B("Review: ")] + _review_line(rule.review))
    facts.append([B("Defined in: "), C(_rel(rule.file, root))] + ([T(f", line {rule.line}")] if rule.line else []))
    out.append(Items(facts))
    if rule.text != prov.text and (rule.text.get("zh") or rule.text.get("en")):
        out.append(Para([B("The words this rule encodes:")]))
        out.append(_law(pack, rule.text))
    return out


def _cases_section(provision: str, rules: list[Any], report: Report, cases: Mapping[str, Any]) -> list[Block]:
    forbids = {r.id for r in rules if r.effect == "forbid"}
    cov = next(c for c in report.coverage if c.provision == provision)
    decisive, boundary = set(cov.decisive_cases), set(cov.boundary_cases)
    shown: list[str] = []
    duty_only = 0
    for r in report.results:
        expect = cases[r.id]["expect"]
        decides = bool(forbids & set(expect["determining"]))
        if provision in r.exercises or decides:
            shown.append(r.id)
        elif r.id in decisive:
            duty_only += 1
    out: list[Block] = [Heading(4, [T(f"Cases for {provision}")], _anchor(f"cases-{provision}"))]
    if not shown:
        out.append(Para([T("No case names this provision.")], "warn"))
        return out
    rows: list[list[Inline]] = []
    by_id = {r.id: r for r in report.results}
    for cid in shown:
        case, result = cases[cid], by_id[cid]
        expect = case["expect"]
        outcome: Inline = [B(expect["decision"])]
        if expect["determining"]:
            outcome += [T(" by ")] + _join([[C(x)] for x in expect["determining"]], ", ")
        if expect.get("obligations"):
            outcome += [T("; duties: ")] + _join([[C(x)] for x in expect["obligations"]], ", ")
        if expect["errors"]:
            outcome += [T("; errors: ")] + _join([[C(x)] for x in expect["errors"]], ", ")
        if expect.get("warnings"):
            outcome += [T("; warnings: ")] + _join([[C(x)] for x in expect["warnings"]], ", ")
        role = "decisive" if cid in decisive else ("not decisive (boundary or exception)" if cid in boundary else "—")
        if not result.passed:
            role += " — FAILING"
        rows.append([[C(cid)], _prose(case.get("description", "")) + _facts_line(case["request"]), outcome, [T(role)]])
    out.append(Table([[T("Case")], [T("Scenario and facts")], [T("Expected")], [T(f"Role of {provision}")]], rows))
    if duty_only:
        out.append(Para([T(f"Its duties also attach in {duty_only} further case{'s' if duty_only != 1 else ''} listed under other provisions.")]))
    return out


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _facts_line(request: Any, limit: int = 400) -> Inline:
    """The case's request as one line of ``field: value`` pairs, so a reviewer sees what was decided."""
    pairs: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            shown = ", ".join(map(_scalar, value)) if isinstance(value, list) else _scalar(value)
            pairs.append(f"{prefix}: {shown}")

    walk("", request)
    text = " · ".join(pairs)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return [T(" — " if pairs else ""), C(text)] if pairs else []


def _facts_section(pack: Any) -> list[Block]:
    """Format v2: the facts and decide-only operations the pack declares, with their meanings."""
    if not pack.facts and not pack.operations:
        return []

    def text(texts: Mapping[str, str]) -> str:
        return _fold(str(texts.get(pack.language) or next(iter(texts.values()))))

    rows: list[list[Inline]] = []

    def walk(prefix: str, facts: Mapping[str, Any]) -> None:
        for name, fact in facts.items():
            kind = "one of " + ", ".join(map(_scalar, fact["enum"])) if "enum" in fact else str(fact.get("type", ""))
            meaning = text(fact["description"]) if "description" in fact else ""
            values = "; ".join(f"{v}: {text(d)}" for v, d in fact.get("values", {}).items())
            rows.append([[C(prefix + name)], [T(kind)], [T(meaning + (f" ({values})" if values else ""))]])
            walk(prefix + name + ".", fact.get("properties", {}))

    walk("request.", pack.facts)
    out: list[Block] = [Heading(2, [T("Facts this pack reads")], "facts"),
                        Para([T("Besides facegate's core request fields, requests decided by this pack may state these facts; "
                                "an absent fact is unknown and never grants a permit.")])]
    if rows:
        out.append(Table([[T("Fact")], [T("Values")], [T("Meaning")]], rows))
    if pack.operations:
        out.append(Items([[C(name), T(" — " + text(op["description"]) + " (decided, never executed by the gate)")]
                          for name, op in pack.operations.items()]))
    return out


def _parameters_section(values: Mapping[str, Any], docs: Mapping[str, Mapping[str, Any]]) -> list[Block]:
    if not values:
        return []
    rows: list[list[Inline]] = []
    for name in values:
        spec = docs[name]
        ref = spec["reference"]
        ref_line: Inline = [B(ref["provision"])]
        if ref.get("article"):
            ref_line.append(T(" Art. " + ref["article"]))
        if ref.get("text"):
            ref_line.append(T(" — " + _fold(ref["text"])))
        rows.append([[C(name)], [T(_value(values[name]))], _prose(spec["description"]), ref_line])
    return [Heading(2, [T("Parameters")], "parameters"),
            Table([[T("Parameter")], [T("Value")], [T("Meaning")], [T("Legal reference")]], rows)]


def _variables_section(variables: Iterable[Mapping[str, Any]], renderer: PlainRenderer) -> list[Block]:
    items: list[Inline | tuple[Inline, list[Inline]]] = []
    for v in variables:
        head: Inline = [C(v["name"])]
        if v.get("description"):
            head += [T(" — "), *_prose(v["description"])]
        items.append((head, [[T("in words: ")] + renderer.render(v["expression"]), [C(_fold(v["expression"]))]]))
    if not items:
        return []
    return [Heading(2, [T("Variables")], "variables"),
            Para([T("Named conditions the rules reuse; a rule's plain-words condition spells them out.")]), Items(items)]


def _questions_section(questions: list[Question]) -> list[Block]:
    if not questions:
        return []
    rows: list[list[Inline]] = []
    for q in questions:
        text: Inline = [T(q.en)]
        if q.zh:
            text += [T(" / " + q.zh)]
        rows.append([[("anchor", _anchor(q.id)), B(q.id)], [T(q.origin or "—")], _join([[("link", f"#{_anchor(p)}|{p}")] for p in q.provisions], ", "), text])
    return [Heading(2, [T("Open questions")], "questions"),
            Para([T("“source”: listed by the research the pack is built on; “encoding”: a choice made while encoding that a "
                    "lawyer should confirm or overturn.")]),
            Table([[T("")], [T("Origin")], [T("Provisions")], [T("Question")]], rows)]




def _signoff_section(policy: Policy, approvals: Sequence[Any]) -> list[Block]:
    from .._approvals import approved_rules

    held = approved_rules(policy, approvals)
    out: list[Block] = [Heading(2, [T("Sign-off")], "sign-off"),
                        Para([T(f"{len(held)} of {len(policy.rules)} rules approved at their current text "
                                "(approvals are records in the audit chain; editing a rule voids its approval).")])]
    rows: list[list[Inline]] = []
    for a in approvals:
        what = f"rule {a.rule}" if a.scope == "rule" else "the whole pack"
        holds = (a.scope == "pack" and a.revision == policy.revision) or (a.scope == "rule" and held.get(a.rule or "") == a)
        rows.append([[T(f"#{a.seq}")], [T(a.time)], [T(f"{a.by} ({a.role})")], [T(what)], [C(a.revision[:19])],
                     [T("holds" if holds else "superseded")], [T(a.note or "—")]])
    if rows:
        out.append(Table([[T("Record")], [T("When")], [T("Who")], [T("Approved")], [T("Revision")], [T("Now")], [T("Note")]], rows))
    else:
        out.append(Para([T("No approvals recorded yet.")]))
    return out
