"""The records the gate writes (decision write-ahead, outcome after), and frozen copies for observers."""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
from collections.abc import Mapping
from typing import Any, NoReturn

from ..policy import Decision


def decision_record(decision: Decision, facts: Any, *, copy_request: bool = True) -> dict[str, Any]:
    """The write-ahead record of ``decision`` on ``facts``.

    ``copy_request=False`` shares the request's objects with the record: only for a caller that
    encodes the record before anything can change them (``append_later`` does, on its own thread).
    Effect and reason are plain strings, so the audit log's fast JSON path takes the record.
    """
    request = (copy.deepcopy(dict(facts)) if copy_request else dict(facts)) if isinstance(facts, Mapping) else {"invalid": type(facts).__name__}
    return {
        "kind": "decision",
        "decision_id": decision.decision_id,
        "time": decision.evaluated_at,
        "policy": dict(decision.policy),
        "request": request,
        "effect": str(decision.effect),
        "reason": str(decision.reason),
        "determining": [{"rule": d["rule"], "provision": d["provision"], "article": d["article"]} for d in decision.determining],
        "obligations": [{k: v for k, v in o.items() if k != "sources"} for o in decision.obligations],
        "errors": [dict(e) for e in decision.errors],
        "violations": [dict(v) for v in decision.violations],
        "unmet": [{"rule": u["rule"], "provision": u["provision"], "failed": [f["plain"] for f in u["failed"]]} for u in decision.unmet],
        **({"packs": [dict(p) for p in decision.packs]} if hasattr(decision, "packs") else {}),
    }


def outcome_record(decision: Decision, *, recognizer: Mapping[str, str], operation: Any, status: str, error: str | None,
                   error_code: str | None, notes: list[str] | tuple[str, ...], enforced: tuple[dict[str, Any], ...],
                   confinement: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "kind": "outcome",
        "decision_id": decision.decision_id,
        "time": now(),
        "recognizer": dict(recognizer),
        "operation": operation if isinstance(operation, str) else None,
        "outcome": "executed" if status == "executed" else ("not_executed" if status == "denied" else "error"),
        "error": error,
        "error_code": error_code,
        "notes": list(notes),
        "enforced": [o["type"] for o in enforced],
        "confinement": dict(confinement),
    }


def denied(decision: Decision, reason: str, source: str, error: str) -> Decision:
    """The same decision turned into a deny the gate imposed (no rule determined it)."""
    return dataclasses.replace(
        decision, effect="deny", reason=reason, determining=(), obligations=(),
        errors=decision.errors + ({"rule": source, "provision": "", "mode": "enforce", "error": error},),
    )


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    return value


class FrozenDict(dict):  # type: ignore[type-arg]
    """A ``dict`` that refuses changes (still a dict: ``json.dumps`` and ``isinstance`` work)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("facegate records handed to observers are read-only copies")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


def frozen(value: Any) -> Any:
    """A deep, read-only copy: mappings become :class:`FrozenDict`, lists tuples."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return copy.deepcopy(value)
