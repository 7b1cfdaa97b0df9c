"""The neutral document model: inline spans and blocks, rendered later as Markdown and HTML."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ------------------------------------------------------------------------------------------------
# inline spans and blocks

Span = tuple[str, str]  # (kind, text); kind is text | code | bold | link ("#target|label") | anchor
Inline = list[Span]


def T(text: str) -> Span:
    return ("text", text)


def C(text: str) -> Span:
    return ("code", text)


def B(text: str) -> Span:
    return ("bold", text)


def L(url: str) -> Span:
    return ("link", url)


@dataclass
class Heading:
    level: int
    content: Inline
    anchor: str


@dataclass
class Para:
    content: Inline
    css: str = ""


@dataclass
class Bilingual:
    """The law text in each of the pack's languages, side by side: ``(lang, label, text)``."""

    columns: list[tuple[str, str, str]]


@dataclass
class Table:
    header: list[Inline]
    rows: list[list[Inline]]


@dataclass
class Items:
    items: list[Inline | tuple[Inline, list[Inline]]]
    ordered: bool = False


@dataclass
class Notice:
    title: str
    paragraphs: list[tuple[str, str]]  # (lang, text)


Block = Heading | Para | Bilingual | Table | Items | Notice


_CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _fold(text: str) -> str:
    """One line: whitespace runs become one space, and none is left between Chinese characters."""
    return _CJK_GAP.sub("", " ".join(str(text).split()))
