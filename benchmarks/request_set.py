"""The requests the decision benchmarks use: picks from the CAC-2023 cases, and perturbed copies.

Perturbed copies have one to three facts removed or changed and are still valid against
``request.v1.json``: they probe the corners the hand-written cases do not, for the agreement check.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from _common import ROOT

REQUEST_SCHEMA = ROOT / "engine" / "facegate" / "schemas" / "request.v1.json"


def pick(requests: Sequence[tuple[str, dict[str, Any]]], n: int | None, effects: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """``n`` requests, half permitted and half denied, evenly spaced through the set, in its order."""
    if n is None or n >= len(requests):
        return list(requests)
    permits = [r for r in requests if effects[r[0]] == "permit"]
    denies = [r for r in requests if effects[r[0]] != "permit"]

    def spaced(pool: Sequence[tuple[str, dict[str, Any]]], k: int) -> list[str]:
        return [pool[int(i * len(pool) / k)][0] for i in range(min(k, len(pool)))]

    chosen = set(spaced(permits, n // 2) + spaced(denies, n - n // 2))
    return [r for r in requests if r[0] in chosen]


def _schema_leaves(schema: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    for name, sub in schema.get("properties", {}).items():
        if name == "$schema":
            continue
        path = prefix + (name,)
        yield path, sub
        if sub.get("type") == "object":
            yield from _schema_leaves(sub, path)


_SAMPLES: dict[str, list[Any]] = {
    "jurisdiction": ["CN", "CN-11", "CN-HK", "CN-TW", "US", "HK"],
    "citation": ["", "PIPL Art. 13(3)"],
    "age": [0, 13, 14, 15, 42],
    "stored_persons": [0, 10_000, 10_001],
    "retention_days": [0, 30, 400],
    "id": ["x-1"],
}


def _random_value(path: tuple[str, ...], schema: Mapping[str, Any], rng: random.Random) -> Any:
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "boolean":
        return rng.choice([True, False])
    if kind == "array":
        items = schema["items"]["enum"]
        return rng.sample(items, rng.randint(0, min(3, len(items))))
    if kind == "object":
        return {}
    return rng.choice(_SAMPLES.get(path[-1], [0]))


def perturbed(requests: Sequence[dict[str, Any]], count: int, seed: int = 2023) -> list[dict[str, Any]]:
    """Schema-valid copies of ``requests`` with one to three facts removed or changed (seeded)."""
    import jsonschema_rs

    schema = json.loads(REQUEST_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema_rs.validator_for(schema)
    leaves = list(_schema_leaves(schema))
    required = set(schema.get("required", ()))
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for _ in range(count * 20):
        if len(out) >= count:
            break
        request = copy.deepcopy(rng.choice(requests))
        for _ in range(rng.randint(1, 3)):
            path, sub = rng.choice(leaves)
            parent = request
            for name in path[:-1]:
                parent = parent.setdefault(name, {})
            if path[-1] in parent and (len(path) > 1 or path[-1] not in required) and rng.random() < 0.5:
                del parent[path[-1]]
            else:
                parent[path[-1]] = _random_value(path, sub, rng)
        if validator.is_valid(request):
            out.append(request)
    return out
