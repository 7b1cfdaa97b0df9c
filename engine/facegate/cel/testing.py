"""Testing helpers that ship with the engine: random activations and a differential run.

``testing_differential(text, activations)`` evaluates one expression with the native
compiler on every activation and compares each result with cel-python's interpreter --
both as released and with :data:`SPEC_CORRECTIONS` applied (each a documented place where
cel-python 0.5.0 departs from the CEL spec).  The native result must equal the corrected
interpreter's everywhere; disagreements with the released interpreter are counted and,
for a sample, attributed to the single correction that explains them.

An expression only observes the paths it references, so the interpreters (slow) run once
per distinct projection of the activations onto those paths, while the compiled program
(fast) runs on every activation.  That is what makes 10,000 activations per rule cheap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._functions import CelFunction
from ._values import CELError, CelType, Duration, Timestamp, UInt


@dataclass
class Divergence:
    activation: Mapping[str, Any]
    native: Any
    reference: Any  # the corrected interpreter's result
    interpreter: Any  # the released interpreter's result


@dataclass
class DifferentialReport:
    expression: str
    activations: int = 0  # evaluated by the native program
    distinct: int = 0  # distinct projections evaluated by the interpreters
    errors: int = 0  # activations whose (agreed) result is an error
    divergence_count: int = 0  # native vs corrected interpreter, per activation: must be 0
    divergences: list[Divergence] = field(default_factory=list)  # the first few of them
    interpreter_compared: int = 0  # activations also compared with released cel-python
    interpreter_divergences: int = 0  # of those, how many disagree
    explained: dict[str, int] = field(default_factory=dict)  # correction -> sampled projections it explains
    unexplained: int = 0  # sampled projections no single correction explains

    @property
    def ok(self) -> bool:
        return self.divergence_count == 0


def same_value(a: Any, b: Any) -> bool:
    """Type-strict equality for comparing backends: ``1 != 1.0 != True``, NaN equals NaN,
    ``-0.0 != 0.0``, every error equals every error, map order is irrelevant."""
    ta, tb = type(a), type(b)
    if ta is CELError or tb is CELError:
        return ta is tb
    if ta is not tb:
        return False
    if ta is float:
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if ta is list:
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if ta is dict:
        if len(a) != len(b):
            return False
        keys_b = {_canon(k): k for k in b}
        return all(_canon(k) in keys_b and same_value(v, b[keys_b[_canon(k)]]) for k, v in a.items())
    return bool(a == b)


def _canon(value: Any) -> Any:
    """A hashable, type-tagged, order-preserving image of a value."""
    t = type(value)
    if value is None:
        return ("n",)
    if t is bool:
        return ("b", value)
    if t is UInt:
        return ("u", int(value))
    if t is int:
        return ("i", value)
    if t is float:
        return ("f", repr(value))
    if t is str:
        return ("s", value)
    if t is bytes:
        return ("y", value)
    if t is list or t is tuple:
        return ("l", tuple(_canon(v) for v in value))
    if isinstance(value, Mapping):
        return ("m", tuple((_canon(k), _canon(v)) for k, v in value.items()))
    if t is Timestamp:
        return ("t", value.nanos)
    if t is Duration:
        return ("d", value.nanos)
    if t is CelType:
        return ("T", value.name)
    return ("o", repr(value))


_WHOLE = object()  # the value at this path is read
_PRESENT = object()  # only whether this key exists is observed


def _trie(paths: Iterable[tuple[str, ...]], presence: Iterable[tuple[str, ...]] = ()) -> dict[str, Any]:
    root: dict[str, Any] = {}
    marked = [(p, _WHOLE) for p in paths] + [(p, _PRESENT) for p in presence]
    for path, mark in sorted(marked, key=lambda item: (len(item[0]), item[1] is _PRESENT)):
        node = root
        for i, name in enumerate(path):
            current = node.get(name)
            if current is _WHOLE:
                break
            if i == len(path) - 1:
                if current is None or (current is _PRESENT and mark is _WHOLE):
                    node[name] = mark
            else:
                if not isinstance(current, dict):
                    node[name] = current = {}
                node = current
    return root


def _project(value: Any, trie: Any) -> Any:
    if trie is _WHOLE or not isinstance(value, Mapping):
        return _canon(value)
    return (
        "p",
        tuple(
            (name, True if sub is _PRESENT else _project(value[name], sub))
            for name, sub in trie.items()
            if name in value
        ),
    )


def projection_key(
    activation: Mapping[str, Any],
    paths: Iterable[tuple[str, ...]],
    presence: Iterable[tuple[str, ...]] = (),
) -> Any:
    """What an expression that reads ``paths`` and tests ``presence`` (with ``has()``)
    can observe of ``activation``: equal keys, equal results."""
    if any("." in name for name in activation):
        return _canon(activation)  # qualified names: no pruning
    return _project(activation, _trie(paths, presence))


def testing_differential(
    text: str,
    activations: Iterable[Mapping[str, Any]],
    *,
    schema: Mapping[str, Any] | None = None,
    functions: Mapping[str, CelFunction] | None = None,
    check: bool = True,
    released_limit: int | None = None,
    attribute: int = 20,
    keep: int = 10,
) -> DifferentialReport:
    """Compare the native program of ``text`` with cel-python on every activation.

    The corrected interpreter runs once per distinct projection.  The released one (only
    counted, never asserted on) runs on the first ``released_limit`` distinct projections
    (``None``: all).  ``attribute`` bounds how many distinct disagreements with it are
    attributed to a single correction; ``keep`` bounds the divergences kept.
    """
    from . import _parse
    from ._interp import SPEC_CORRECTIONS, InterpreterRunner
    from ._program import compile as cel_compile

    functions = dict(functions or {})
    program = cel_compile(text, schema=schema, functions=functions, check=check)
    tree = _parse.parse_tree(text)
    corrected = InterpreterRunner(tree, functions, frozenset(SPEC_CORRECTIONS))
    released = InterpreterRunner(tree, functions)
    singles: dict[str, InterpreterRunner] = {}
    cache: dict[Any, tuple[Any, Any]] = {}
    unset = object()
    released_runs = 0
    attributed: set[Any] = set()
    report = DifferentialReport(text)
    trie = _trie(program.reference_paths, program.presence_paths)
    for activation in activations:
        report.activations += 1
        native = program.run(activation)
        qualified = any("." in name for name in activation)  # no pruning for qualified names
        key = _canon(activation) if qualified else _project(activation, trie)
        results = cache.get(key)
        if results is None:
            interpreter_result: Any = unset
            if released_limit is None or released_runs < released_limit:
                interpreter_result = released.run(activation)
                released_runs += 1
            results = (corrected.run(activation), interpreter_result)
            cache[key] = results
        reference, interpreter = results
        if type(native) is CELError:
            report.errors += 1
        if not same_value(native, reference):
            report.divergence_count += 1
            if len(report.divergences) < keep:
                shown = None if interpreter is unset else interpreter
                report.divergences.append(Divergence(dict(activation), native, reference, shown))
        if interpreter is unset:
            continue
        report.interpreter_compared += 1
        if not same_value(native, interpreter):
            report.interpreter_divergences += 1
            if key not in attributed and len(attributed) < attribute:
                attributed.add(key)
                explained = False
                for name in SPEC_CORRECTIONS:
                    runner = singles.get(name)
                    if runner is None:
                        runner = singles[name] = InterpreterRunner(tree, functions, frozenset([name]))
                    if same_value(runner.run(activation), native):
                        report.explained[name] = report.explained.get(name, 0) + 1
                        explained = True
                        break
                if not explained:
                    report.unexplained += 1
    report.distinct = len(cache)
    return report


# -- random activations ---------------------------------------------------------------------

_WRONG: tuple[Any, ...] = (None, True, 0, 1, 2.5, "", "x", [], ["x", 1], {}, {"x": 1})


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, malformed: float, missing: float) -> None:
        self.root = root
        self.rng = rng
        self.malformed = malformed
        self.missing = missing

    def resolve(self, schema: Any) -> Any:
        for _ in range(16):
            if not isinstance(schema, Mapping) or not isinstance(schema.get("$ref"), str):
                return schema
            node: Any = self.root
            for part in schema["$ref"][1:].split("/")[1:]:
                node = node.get(part, {}) if isinstance(node, Mapping) else {}
            schema = node
        return schema

    def value(self, schema: Any, trie: Any, depth: int) -> Any:
        rng = self.rng
        schema = self.resolve(schema)
        if rng.random() < self.malformed or depth > 6 or not isinstance(schema, Mapping):
            return rng.choice(_WRONG)
        if schema.get("enum"):
            if rng.random() < self.malformed / 2:
                return rng.choice(["other", "", "ANALYZE"])
            return rng.choice(schema["enum"])
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = rng.choice(kind)
        if kind == "object" or (kind is None and "properties" in schema):
            return self.obj(schema, trie, depth)
        if kind == "array":
            limit = schema.get("maxItems", 4)
            size = rng.choice([0, 1, 1, 2, 2, 3, min(int(limit), 6)])
            return [
                self.value(schema.get("items", {}), _WHOLE, depth + 1) for _ in range(min(size, int(limit)))
            ]
        if kind == "string":
            return rng.choice(["", "a", "abc", "CN", "CN-BJ", "ünï", "a.b", "x" * 8])
        if kind == "integer":
            low, high = int(schema.get("minimum", -5)), int(schema.get("maximum", 200))
            if rng.random() < self.malformed:
                return rng.choice([low - 1, high + 1])
            return rng.choice([low, high, rng.randint(low, high), rng.randint(low, min(high, low + 20))])
        if kind == "number":
            return rng.choice([0.0, 1.5, -2.0, 100.25, 3])
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        return rng.choice(_WRONG)

    def obj(self, schema: Mapping[str, Any], trie: Any, depth: int) -> dict[str, Any]:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if isinstance(trie, dict) and name not in trie:
                continue  # not observed by the expression: not worth generating
            chance = self.missing / 4 if name in required else self.missing
            if self.rng.random() < chance:
                continue
            out[name] = self.value(sub, trie.get(name) if isinstance(trie, dict) else _WHOLE, depth + 1)
        return out


def random_activations(
    schema: Mapping[str, Any],
    count: int,
    *,
    seed: int = 0,
    paths: Iterable[tuple[str, ...]] | None = None,
    presence: Iterable[tuple[str, ...]] = (),
    malformed: float = 0.1,
    missing: float = 0.25,
) -> list[dict[str, Any]]:
    """``count`` activations drawn from the activation ``schema``, some malformed.

    Optional properties go missing with probability ``missing``; any value is replaced by
    one of the wrong type (``null``, a number for a string, a list for a map...) with
    probability ``malformed``.  With ``paths`` and ``presence`` (a program's
    ``reference_paths`` and ``presence_paths``), only what the expression can observe is
    generated, which keeps large runs cheap.
    """
    rng = random.Random(seed)
    generator = _Generator(schema, rng, malformed, missing)
    trie = _trie(paths, presence) if paths is not None else None
    out: list[dict[str, Any]] = []
    for _ in range(count):
        value = generator.obj(schema, trie, 0)
        out.append(value)
    return out


__all__ = [
    "DifferentialReport",
    "Divergence",
    "projection_key",
    "random_activations",
    "same_value",
    "testing_differential",
]
