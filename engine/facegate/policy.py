"""The compiled :class:`Policy` and the :class:`Decision` it returns."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs

from . import _compile, _decide, _schema
from ._decision import Decision, RuleOutcomes
from ._pack import Pack, Rule, load_pack

__all__ = ["Decision", "Policy", "RuleOutcomes", "load_policy"]

_V1_VALIDATOR = jsonschema_rs.validator_for(_schema.load_schema("request.v1.json"))


class Policy:
    """A loaded, validated and compiled policy pack.  Immutable and safe to share across threads."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self.id: str = pack.meta["id"]
        self.version: str = pack.meta["version"]
        self.revision: str = pack.revision
        self._rules = pack.rules
        self.request_schema: dict[str, Any] = pack.request_schema
        self._checker = _RequestChecker(pack.request_schema)
        self.operations: tuple[str, ...] = tuple(pack.request_schema["properties"]["operation"]["enum"])
        self._procedure = _decide.Procedure(self, self._checker.violations, self._checker.fast.is_valid)

    def __repr__(self) -> str:
        return f"<Policy {self.id} {self.version} {len(self._rules)} rules>"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def _activation(self, request: Any) -> dict[str, Any]:
        """The CEL activation conditions are evaluated against (tools and explanations use it)."""
        return {"params": self.pack.parameters, "request": request}

    @property
    def _by_operation(self) -> dict[str, tuple[Rule, ...]]:
        """The rules that can apply to each operation (read from the checked syntax trees)."""
        return {op: self._procedure.candidates(op) for op in self.operations}

    def in_force(self, day: str) -> bool:
        start = self.pack.meta.get("valid_from")
        end = self.pack.meta.get("valid_until")
        return (start is None or day >= start) and (end is None or day <= end)

    def decide(self, request: Mapping[str, Any], *, explain: bool = False, at: _dt.datetime | None = None) -> Decision:
        """Decide one request.  Never raises for a bad request: it is denied with the reasons.

        The procedure is :mod:`facegate._decide`; ``explain=True`` adds every condition's value.
        """
        return self._procedure.decide(request, explain, at)

    def decide_many(self, requests: Iterable[Mapping[str, Any]], *, processes: int = 1) -> list[Decision]:
        """Decide every request, in order; ``processes > 1`` spreads them over that many processes:
        this one and ``processes - 1`` forked workers (:class:`facegate._pool.DecisionPool`; keep a
        pool open to reuse its workers)."""
        if processes <= 1:
            return [self._procedure.decide(r, False, None) for r in requests]
        from ._pool import DecisionPool

        with DecisionPool(self, processes - 1) as pool:
            return pool.decide_many(requests)


class _RequestChecker:
    """The request contract of one policy: a fast validity test, and explained violations."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.v1 = schema is _schema.load_schema("request.v1.json")
        self.schema = schema
        self.fast = _V1_VALIDATOR if self.v1 else jsonschema_rs.validator_for(schema)
        self._explain: Any = None  # the explaining validator (jsonschema), built on the first invalid request

    def violations(self, request: Any) -> list[dict[str, str]]:
        if type(request) is not dict and not isinstance(request, Mapping):
            return [{"pointer": "", "message": f"request must be a json object, not `{type(request).__name__}`"}]
        try:
            if self.fast.is_valid(request):
                return []
        except Exception as exc:  # values json cannot represent (datetime, numpy scalars, huge ints)
            return [{"pointer": "", "message": f"request is not plain json data: {exc}"}]
        try:
            if self._explain is None:
                self._explain = _schema.validator("request.v1.json") if self.v1 else _schema.validator_of(self.schema)
            found = [{"pointer": p, "message": m} for p, m in _schema.violations_with(self._explain, request)]
        except Exception as exc:
            found = [{"pointer": "", "message": f"request is not plain json data: {exc}"}]
        return found or [{"pointer": "", "message": "request does not match the request contract"}]


def load_policy(path: str | Path, *, backend: str = _compile.DEFAULT_BACKEND, functions: Mapping[str, Any] | None = None,
                companions: tuple[Any, ...] = ()) -> Policy:
    """Load, validate and compile a policy pack folder (or a single pack file).

    ``functions``: the CEL functions conditions may call (default: the built-in plugin's);
    a :class:`facegate.Gate` passes those of its allowed plugins.  ``companions``: the
    declarations (``Pack.declaration()``) of format-v2 packs loaded together with this one;
    their facts join the request contract, and a conflicting declaration is a load error.
    """
    return Policy(load_pack(path, backend=backend, functions=functions, companions=companions))
