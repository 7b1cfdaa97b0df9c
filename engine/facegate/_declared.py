"""Load phase, format v2: what a pack declares about itself, checked.

A v2 pack declares its languages (which every text must carry), its evidence-grade vocabulary,
the request facts it reads and the operations it adds; :class:`DeclarationChecks` holds the
loader's checks of those declarations and of every text against them.  The merge of facts into
one request contract is :mod:`._facts`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from . import _facts
from ._yaml import YamlDocument, escape_pointer_token
from .errors import Problem

#: Blocks only the document carrying ``pack`` may hold (format v2).
PACK_BLOCKS = ("facts", "operations", "languages", "evidence_grades", "governs")
#: The evidence grades of a pack that declares none (the CAC research's vocabulary).
DEFAULT_GRADES: dict[str, dict[str, str]] = {
    "A": {"en": "source-language text seen in a full-text reproduction of the official text, with the article number"},
    "B": {"en": "article number and content confirmed by a reliable translation"},
    "C": {"en": "wording printed identically by media reporting the text; number and article boundary unverified"},
    "D": {"en": "content known only from paraphrase; no verbatim text"},
    "X": {"en": "text not found"},
}


class DeclarationChecks:
    """Mixed into the pack loader: the v2 checks, reporting into ``self.problems``."""

    problems: list[Problem]
    companions: tuple[_facts.Declaration, ...]
    request_schema: dict[str, Any]
    languages: tuple[str, ...]
    required: tuple[str, ...]
    grades: Mapping[str, Any]
    skip: set[tuple[str, str]]

    def declare(self, pack_doc: YamlDocument, docs: list[YamlDocument]) -> None:
        """Format v2: languages, grades, and the request contract (core + facts of the packs loaded together)."""
        data = pack_doc.data
        for doc in docs:
            if doc is not pack_doc:
                for block in PACK_BLOCKS:
                    if block in doc.data:
                        self.problems.append(doc.problem("/" + block, f"`{block}` belongs in the document that carries `pack` (`{pack_doc.path}`)"))
        langs = data.get("languages", {"declared": ["en"]})
        self.languages = tuple(langs["declared"])
        self.required = tuple(langs.get("required", langs["declared"]))
        for i, lang in enumerate(self.required):
            if lang not in self.languages:
                self.problems.append(pack_doc.problem(f"/languages/required/{i}", f"required language `{lang}` is not declared (declared: {', '.join(self.languages)})"))
        self.grades = data.get("evidence_grades", DEFAULT_GRADES)
        for grade, meaning in self.grades.items():
            self.check_languages(pack_doc, f"/evidence_grades/{escape_pointer_token(grade)}", meaning, f"evidence grade `{grade}`")
        for name, op in data.get("operations", {}).items():
            self.check_languages(pack_doc, f"/operations/{name}/description", op["description"], f"operation `{name}`")
        self.check_fact_texts(pack_doc, "/facts", data.get("facts", {}))
        own = _facts.declaration_of(pack_doc, data["pack"]["id"], self.languages[0])
        self.request_schema, problems = _facts.merged_schema((*self.companions, own))
        self.problems.extend(problems)

    def check_fact_texts(self, doc: YamlDocument, ptr: str, facts: Mapping[str, Any]) -> None:
        for name, fact in facts.items():
            here = f"{ptr}/{escape_pointer_token(name)}"
            self.check_fact(doc, here, name, fact)

    def check_fact(self, doc: YamlDocument, here: str, name: str, fact: Mapping[str, Any]) -> None:
        if "description" in fact:
            self.check_languages(doc, here + "/description", fact["description"], f"fact `{name}`")
        for value, texts in fact.get("values", {}).items():
            if value not in fact.get("enum", [fact.get("const")]):
                self.problems.append(doc.problem(f"{here}/values/{escape_pointer_token(value)}", f"fact `{name}`: `{value}` is not one of its values"))
            self.check_languages(doc, f"{here}/values/{escape_pointer_token(value)}", texts, f"fact `{name}` value `{value}`")
        self.check_fact_texts(doc, here + "/properties", fact.get("properties", {}))
        if "items" in fact:
            self.check_fact(doc, here + "/items", name, fact["items"])

    def check_languages(self, doc: YamlDocument, ptr: str, texts: Mapping[str, Any], what: str, skip: tuple[str, ...] = ()) -> None:
        """Every required language present; no language the pack does not declare."""
        given = [k for k in texts if k not in skip]
        for lang in self.required:
            if lang not in given:
                self.problems.append(doc.problem(ptr, f"{what}: the `{lang}` text is missing (required languages: {', '.join(self.required)})"))
        for lang in given:
            if lang not in self.languages:
                near = difflib.get_close_matches(lang, self.languages, n=1)
                tip = f"; did you mean `{near[0]}`?" if near else f" (declared: {', '.join(self.languages)}; add it under `languages.declared`)"
                self.problems.append(doc.problem(f"{ptr}/{escape_pointer_token(lang)}", f"{what}: language `{lang}` is not declared{tip}"))

    def check_texts(self, docs: list[YamlDocument]) -> None:
        """Format v2: messages, law texts, titles and notices in the pack's languages; grades from its vocabulary."""
        for doc in docs:
            pack = doc.data.get("pack")
            if pack is not None:
                self.check_languages(doc, "/pack/instrument/title", pack["instrument"]["title"], "instrument title")
                if "review_notice" in pack:
                    self.check_languages(doc, "/pack/review_notice", pack["review_notice"], "review notice")
            for kind in ("rules", "provisions"):
                for i, spec in enumerate(doc.data.get(kind, [])):
                    ptr = f"/{kind}/{i}"
                    if (doc.path, ptr) in self.skip:
                        continue
                    what = f"rule `{spec['id']}`" if kind == "rules" else f"provision `{spec['provision']}`"
                    self.check_languages(doc, ptr + "/text", spec["text"], what + " text", skip=("source", "grade", "note"))
                    if kind == "rules":
                        self.check_languages(doc, ptr + "/message", spec["message"], what + " message", skip=("expression",))
                    grade = spec["text"].get("grade")
                    for g in [grade] if isinstance(grade, str) else (grade or []):
                        if g not in self.grades:
                            near = difflib.get_close_matches(g, list(self.grades), n=1)
                            tip = f"; did you mean `{near[0]}`?" if near else ""
                            self.problems.append(doc.problem(ptr + "/text/grade", f"{what}: evidence grade `{g}` is not in the pack's `evidence_grades` ({', '.join(self.grades)}){tip}"))
