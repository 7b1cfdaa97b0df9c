"""The pack's optional ``open-questions.yaml``: questions a legal reviewer must answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._yaml import load_yaml
from ..errors import PolicyError
from ._blocks import _fold

QUESTIONS_FILE = "open-questions.yaml"

# ------------------------------------------------------------------------------------------------
# open questions


@dataclass(frozen=True)
class Question:
    id: str
    origin: str
    provisions: tuple[str, ...]
    en: str
    zh: str


def load_questions(root: Path) -> list[Question]:
    path = root / QUESTIONS_FILE
    if not path.is_file():
        return []
    doc, problems = load_yaml(path, f"{root.name}/{QUESTIONS_FILE}")
    if doc is None:
        raise PolicyError(problems)
    items = doc.data.get("questions") if isinstance(doc.data, dict) else None
    if not isinstance(items, list) or set(doc.data) != {"questions"}:
        raise PolicyError([doc.problem("", "expected one key `questions` holding a list")])
    out: list[Question] = []
    allowed = {"id", "origin", "provisions", "en", "zh"}
    for i, q in enumerate(items):
        ok = isinstance(q, dict) and {"id", "en"} <= set(q) <= allowed and all(
            isinstance(q.get(k, ""), str) for k in ("id", "origin", "en", "zh")
        ) and isinstance(q.get("provisions", []), list)
        if not ok:
            raise PolicyError([doc.problem(f"/questions/{i}", f"a question needs `id` and `en` (optional: origin, provisions, zh); allowed keys: {', '.join(sorted(allowed))}")])
        out.append(Question(q["id"], q.get("origin", ""), tuple(str(p) for p in q.get("provisions", [])), _fold(q["en"]), _fold(q.get("zh", ""))))
    return out


