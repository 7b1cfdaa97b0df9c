"""``facegate docs``: the review document a legal team reads to sign a pack off.

One neutral document model (headings, paragraphs, quotes, tables, lists of inline spans) is built
from the loaded pack, its case files and the optional ``open-questions.yaml`` beside ``pack.yaml``,
then written twice: ``REVIEW.md`` and ``REVIEW.html`` (inline stylesheet, no script, every value
escaped).  The output is deterministic -- no timestamps, no decision ids -- so a test can regenerate
it and fail when the committed copy is stale.

Conditions are shown in plain words by a small renderer for the CEL patterns packs use
(``has(x) && x == "v"`` -> *x is "v"*); anything it does not know is shown as CEL in code style.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import PolicyError, Problem
from ..policy import Policy
from ._build import build
from ._plain import PlainRenderer, plain
from ._questions import QUESTIONS_FILE, Question, load_questions
from ._render import to_html, to_markdown

__all__ = ["QUESTIONS_FILE", "PlainRenderer", "Question", "build", "load_questions", "plain", "render", "to_html", "to_markdown", "write_review"]

# ------------------------------------------------------------------------------------------------
# entry point


def render(policy: Policy, approvals: Sequence[Any] | None = None) -> tuple[str, str]:
    """The review document as (Markdown, HTML) text; ``approvals`` adds the sign-off section."""
    doc = build(policy, approvals)
    return to_markdown(doc), to_html(doc, "Legal review: " + policy.pack.meta["title"])


def write_review(policy: Policy, out_dir: Path | None = None) -> list[Path]:
    """Write ``REVIEW.md`` and ``REVIEW.html`` into ``out_dir`` (default: the pack's own folder)."""
    root = policy.pack.root if policy.pack.root.is_dir() else policy.pack.root.parent
    target = out_dir if out_dir is not None else root
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolicyError([Problem(str(target), None, None, "", f"cannot create output folder: {exc.strerror or exc}")]) from exc
    markdown, page = render(policy)
    written = []
    for name, text in (("REVIEW.md", markdown), ("REVIEW.html", page)):
        path = target / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written

