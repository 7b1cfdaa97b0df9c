"""``compile()`` and :class:`Program`: parse -> check -> compile, once, at load time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import _parse
from ._check import Checker, Converted
from ._compiler import compile_function
from ._errors import CELCheckError, CELEvalError, CELUsageError
from ._functions import BUILTINS, CelFunction
from ._namespace import Budget
from ._values import CELError

BACKENDS: Final = ("native", "interpreter")
_RESERVED_FUNCTIONS: Final = frozenset(BUILTINS) | {
    "has",
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "map",
    "filter",
    "transformList",
    "transformMap",
}


@dataclass(frozen=True)
class Limits:
    """Static limits; an expression over any of them does not compile (CELCheckError).

    ``max_cost`` bounds the worst-case evaluation steps (as :class:`Budget` counts them)
    when every comprehension ranges over something with a known size -- a literal or a
    schema array with ``maxItems``; unbounded comprehensions are left to the budget.
    """

    max_length: int = 100_000  # characters of source text
    max_depth: int = 100  # nesting of the expression tree
    max_comprehension_nesting: int = 4
    max_cost: int | None = 1_000_000

    def __post_init__(self) -> None:
        if self.max_comprehension_nesting > 12:
            raise CELUsageError("max_comprehension_nesting above 12 is not supported")


class Program:
    """A compiled expression: immutable, safe to share between threads.

    ``run(activation, budget=None)`` is the engine's fast path: it returns the value, or a
    :class:`CELError` value, and never raises.  ``evaluate`` raises :class:`CELEvalError`
    instead of returning an error.  ``references`` holds the dotted field paths the
    expression reads or tests with ``has()`` (``request.consent.type``);
    ``reference_paths`` and ``presence_paths`` split them, as tuples, into paths whose
    value is read and paths only tested for presence.  ``cost_bound`` is the worst-case
    steps, or ``None`` when some comprehension has no size bound.  ``tree`` and ``checked``
    are the checked syntax tree, kept for whole-pack compilation (:mod:`._shared`) and indexing.
    """

    __slots__ = (
        "backend",
        "checked",
        "cost_bound",
        "presence_paths",
        "reference_paths",
        "references",
        "run",
        "_source",
        "text",
        "tree",
    )

    text: str
    backend: str
    references: frozenset[str]
    reference_paths: frozenset[tuple[str, ...]]
    presence_paths: frozenset[tuple[str, ...]]
    cost_bound: int | None
    _source: str | None
    run: Callable[..., Any]
    tree: Any  # the parsed tree (``_ast.Node``), for tools that read the expression's structure
    checked: Any  # what the checker found (``_check.Checked``), keyed by the tree's nodes

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Program is immutable")

    @property
    def source(self) -> str | None:
        """The generated Python (native backend), generated now if it was not yet."""
        run = self.run
        if isinstance(run, _Deferred):
            run.generate()
        return self._source

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Program is immutable")

    def __repr__(self) -> str:
        return f"Program({self.text!r}, backend={self.backend!r})"

    def evaluate(self, variables: Mapping[str, Any], *, budget: Budget | None = None) -> Any:
        """The value as plain Python; :class:`CELEvalError` if it is an error."""
        result = self.run(variables, budget)
        if type(result) is CELError:
            raise CELEvalError(result)
        return result


def compile(
    text: str,
    *,
    schema: Mapping[str, Any] | Converted | None = None,
    functions: Mapping[str, CelFunction] | None = None,
    backend: str = "native",
    limits: Limits | None = None,
    check: bool = True,
) -> Program:
    """Compile CEL ``text`` into a :class:`Program`.

    ``schema`` is a JSON Schema of the activation (its ``properties`` are the variables), or
    ``Converted(schema)`` when many expressions are compiled against one schema;
    with it, undefined fields and operators on incompatible types are compile errors.
    ``check=False`` skips those type checks (errors then surface as values at run time),
    like the conformance suite's ``disable_check``; static limits always apply.
    """
    if backend not in BACKENDS:
        raise CELUsageError(f"unknown backend `{backend}`; expected one of {', '.join(BACKENDS)}")
    limits = limits or Limits()
    # Any object with name/impl/arg_types/result_type will do (the plugin registry's own).
    functions = {
        key: fn
        if isinstance(fn, CelFunction)
        else CelFunction(fn.name, fn.impl, tuple(fn.arg_types), fn.result_type)
        for key, fn in (functions or {}).items()
    }
    for key, fn in functions.items():
        if key != fn.name:
            raise CELUsageError(f"function registered as `{key}` is named `{fn.name}`")
        if fn.name in _RESERVED_FUNCTIONS:
            raise CELUsageError(f"`{fn.name}` is a standard cel function or macro and cannot be replaced")
    if len(text) > limits.max_length:
        raise CELCheckError(f"expression longer than the limit of `{limits.max_length}` characters")
    try:
        tree = _parse.parse(text, limits.max_depth)
        checked = Checker(schema, functions, check, limits.max_comprehension_nesting).run(tree)
        if checked.cost is not None and limits.max_cost is not None and checked.cost > limits.max_cost:
            raise CELCheckError(
                f"worst-case cost of `{checked.cost}` steps exceeds the limit of `{limits.max_cost}`"
            )
        run: Callable[..., Any]
        if backend == "native":
            run, source = _Deferred(tree, checked, functions), None  # generated on first use: loading is checking
        else:
            from ._interp import InterpreterRunner

            run, source = InterpreterRunner(_parse.parse_tree(text), functions).run, None
    except RecursionError as exc:
        raise CELCheckError("expression too deeply nested") from exc
    references = frozenset(checked.references)
    presence = frozenset(checked.presence - checked.references)
    program = Program(
        text=text,
        backend=backend,
        references=frozenset(".".join(p) for p in references | presence),
        reference_paths=references,
        presence_paths=presence,
        cost_bound=checked.cost,
        _source=source,
        run=run,
        tree=tree,
        checked=checked,
    )
    if isinstance(run, _Deferred):
        run.program = program
    return program


class _Deferred:
    """A native program's function before its Python is generated: the first call (or a read of
    ``Program.source``) generates and compiles it and puts it in the program's place, so later
    calls go to it directly.  A pack's rules are decided by one generated function per operation
    (:mod:`._shared`); a condition's own function serves explanations and message details only,
    so most are never generated.  Generating cannot fail for a checked tree; two threads racing
    here generate the same function twice, harmlessly."""

    __slots__ = ("checked", "functions", "made", "program", "tree")

    def __init__(self, tree: Any, checked: Any, functions: Mapping[str, CelFunction]) -> None:
        self.tree, self.checked, self.functions = tree, checked, functions
        self.program: Program | None = None
        self.made: Callable[..., Any] | None = None  # for callers that kept this object, not the program

    def generate(self) -> Callable[..., Any]:
        made = self.made
        if made is None:
            made, source = compile_function(self.tree, self.checked, self.functions)
            if self.program is not None:
                object.__setattr__(self.program, "_source", source)
                object.__setattr__(self.program, "run", made)
            self.made = made
        return made

    def __call__(self, act: Any, budget: Budget | None = None) -> Any:
        return self.generate()(act, budget)
