"""Deciding on every core: a pool of worker processes, each holding the same compiled policy.

One Python process decides on one core (the GIL).  :class:`DecisionPool` forks worker processes
that inherit the loaded :class:`facegate.Policy` (nothing is parsed or compiled again, and the
pack cannot differ from the parent's); requests go to them in chunks and decisions come back as
:class:`facegate.Decision` objects with their id, timestamp and rule outcomes fixed.  The calling
process decides too (``caller_helps``): while the workers take chunks from the front, it takes
those no worker has started from the back, so no core waits for the caller to unpack results.

Forking copies the parent as it is: create the pool before starting threads (a lock another
thread holds at the fork stays held in the child).  Where ``fork`` is unavailable, or with
``start_method="spawn"``, each worker loads the pack again from its folder and refuses to decide
if the revision differs from the parent's.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any

from ._decision import Decision, RuleOutcomes, Trace
from .errors import FacegateError

_POLICIES: dict[int, Any] = {}  # token -> policy, read by forked workers
_WORKER: Any = None


class DecisionPool:
    """``with DecisionPool(policy, processes=2) as pool: decisions = pool.decide_many(requests)``."""

    def __init__(self, policy: Any, processes: int | None = None, *, start_method: str | None = None,
                 caller_helps: bool = True) -> None:
        self.policy = policy
        self.processes = processes or _cores()
        self.caller_helps = caller_helps
        method = start_method or ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        policy._procedure.prepare()  # every operation compiled before the fork: workers compile nothing
        if method == "fork":
            token = id(policy)
            _POLICIES[token] = policy
            args: tuple[Any, ...] = ("fork", token)
        else:
            if policy.pack.functions is not None and not _default_functions(policy.pack.functions):
                raise FacegateError("a policy loaded with custom cel functions can only be shared by forking")
            args = ("load", str(policy.pack.root), policy.pack.backend, policy.revision)
        self._executor = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context(method),
                                             initializer=_adopt, initargs=args)
        self._token = args[1] if method == "fork" else None

    def decide_many(self, requests: Iterable[Mapping[str, Any]], *, chunksize: int = 128) -> list[Any]:
        """Decide every request, in order, on the pool's processes (and on this one)."""
        chunks = list(_chunks(iter(requests), chunksize))
        futures = [self._executor.submit(_decide_chunk, chunk) for chunk in chunks]
        mine: dict[int, list[Any]] = {}
        if self.caller_helps:
            decide = self.policy._procedure.decide
            for j in range(len(chunks) - 1, -1, -1):
                if not futures[j].cancel():  # a worker has it (or it is done): the rest are theirs
                    break
                mine[j] = [decide(r, False, None) for r in chunks[j]]
        procedure = self.policy._procedure
        out: list[Any] = []
        for j, future in enumerate(futures):
            found = mine.get(j)
            out.extend(found if found is not None else _rebuild_all(procedure, future.result()))
        return out

    def close(self) -> None:
        self._executor.shutdown()
        if self._token is not None:
            _POLICIES.pop(self._token, None)

    def __enter__(self) -> DecisionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def _chunks(items: Any, size: int) -> Iterable[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _default_functions(functions: Mapping[str, Any]) -> bool:
    from ._plugins import builtin_functions

    return set(functions) == set(builtin_functions())


def _adopt(how: str, *args: Any) -> None:
    global _WORKER
    if how == "fork":
        _WORKER = _POLICIES[args[0]]
        return
    from .policy import load_policy

    root, backend, revision = args
    policy = load_policy(root, backend=backend)
    if policy.revision != revision:
        raise FacegateError(f"the pack at `{root}` changed since it was loaded ({policy.revision[:19]}, not {revision[:19]})")
    _WORKER = policy


#: What crosses back per decision: its fields, less what the parent's copy of the policy can
#: supply (the per-rule map of outcomes is sent as the evaluated rules only; the id is drawn in
#: the parent when first read, as for any decision).
_SENT = ("effect", "reason", "determining", "errors", "warnings", "obligations", "violations", "duration_us", "explanation")


def _decide_chunk(requests: list[Any]) -> list[Any]:
    out = []
    for request in requests:
        d = _WORKER.decide(request)
        fields = d.__dict__
        out.append((tuple(fields[k] for k in _SENT), d._trace.clock, d._trace.outcomes))
    return out


def _rebuild_all(procedure: Any, items: list[tuple[Any, ...]]) -> list[Any]:
    policy, ident, ids, template = procedure.policy, procedure.ident, procedure.ids, procedure.template
    make = Decision._make
    out = []
    for (effect, reason, determining, errors, warnings, obligations, violations, duration_us, explanation), clock, outcomes in items:
        out.append(make(effect=effect, reason=reason, determining=determining, errors=errors, warnings=warnings, obligations=obligations,
                        violations=violations, duration_us=duration_us, explanation=explanation, policy=ident,
                        _trace=Trace(policy, None, outcomes, None, clock), _outcomes=RuleOutcomes(outcomes or {}, ids, template)))
    return out
