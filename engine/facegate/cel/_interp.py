"""The reference backend: cel-python's tree-walking interpreter on the same parse tree.

``backend="interpreter"`` runs cel-python 0.5.0 as it is.  For the differential test the
same interpreter can also run with :data:`SPEC_CORRECTIONS` -- small overrides, each a
place where cel-python 0.5.0 departs from the CEL specification (and from the conformance
suite); the native compiler follows the specification, so where the two disagree the
corrected interpreter is the oracle.  Each correction changes only the inputs it names
and otherwise calls cel-python's own implementation.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any, Final

import celpy
import celpy.celtypes as ct
import celpy.evaluation as ev
import lark

from ._functions import CelFunction
from ._parse import LTree
from ._values import CELError, CelType, Duration, Timestamp, UInt

# -- conversions between native values and celtypes --------------------------------------

_TYPE_CLASSES: Final[dict[Any, str]] = {
    ct.BoolType: "bool",
    ct.IntType: "int",
    ct.UintType: "uint",
    ct.DoubleType: "double",
    ct.StringType: "string",
    ct.BytesType: "bytes",
    ct.ListType: "list",
    ct.MapType: "map",
    type(None): "null_type",
    ct.TimestampType: "google.protobuf.Timestamp",
    ct.DurationType: "google.protobuf.Duration",
    ct.TypeType: "type",
    type: "type",
}
_CLASSES_BY_NAME: Final = {name: cls for cls, name in _TYPE_CLASSES.items() if cls is not type}


def to_cel(value: Any) -> Any:
    """A native value as cel-python's ``celtypes`` (ints out of range raise ``ValueError``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ct.BoolType(value)
    if isinstance(value, UInt):
        return ct.UintType(int(value))
    if isinstance(value, int):
        return ct.IntType(value)
    if isinstance(value, float):
        return ct.DoubleType(value)
    if isinstance(value, str):
        return ct.StringType(value)
    if isinstance(value, bytes):
        return ct.BytesType(value)
    if isinstance(value, Mapping):
        return ct.MapType({to_cel(k): to_cel(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ct.ListType([to_cel(v) for v in value])
    if isinstance(value, Timestamp):
        return ct.TimestampType(value.to_datetime())
    if isinstance(value, Duration):
        return ct.DurationType(value.to_timedelta())
    if isinstance(value, CelType):
        return _CLASSES_BY_NAME[value.name]
    raise TypeError(f"unsupported value type `{type(value).__name__}`")


def from_cel(value: Any) -> Any:
    """A cel-python result as a native value (a :class:`CELError` for error values)."""
    if isinstance(value, ev.CELEvalError):
        return CELError(str(value.args[0]) if value.args else "error")
    if value is None:
        return None
    if isinstance(value, (ct.BoolType, bool)):
        return bool(value)
    if isinstance(value, ct.UintType):
        return UInt(int(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, _dt.datetime):  # cel-python's arithmetic may return plain datetimes
        return Timestamp.from_datetime(value)
    if isinstance(value, _dt.timedelta):
        return Duration.from_timedelta(value)
    if isinstance(value, Mapping):
        items = {from_cel(k): from_cel(v) for k, v in value.items()}
        bad = [v for v in (*items.keys(), *items.values()) if type(v) is CELError]
        return bad[0] if bad else items
    if isinstance(value, (list, tuple)):
        converted = [from_cel(v) for v in value]
        bad = [v for v in converted if type(v) is CELError]
        return bad[0] if bad else converted
    if isinstance(value, type):
        return CelType(_TYPE_CLASSES.get(value, value.__name__))
    return CELError(f"interpreter returned unsupported `{type(value).__name__}`")


# -- spec corrections ------------------------------------------------------------------------

#: Each known cel-python 0.5.0 deviation from the CEL spec, and what the correction does.
SPEC_CORRECTIONS: Final[dict[str, str]] = {
    "heterogeneous_equality": "`==`/`!=`/`in` across types: false (numbers compare by value), "
    "not a `no such overload` error; `true == 1` is false, not true",
    "numeric_ordering": "`<`..`>=` compare int, uint and double by value instead of failing; "
    "`bool` does not order against numbers",
    "strict_arithmetic": "`+ - * / %` need operands of one CEL type (no `double + int`, `true + 1`, "
    "`'a' * 3`); double division by zero gives +-inf/NaN (not always +inf); `int_min % -1` overflows; "
    "unary `-` applies to int and double only (cel-python negates durations)",
    "strict_logic": "a non-bool operand of `&&`/`||` is an error unless the other operand decides "
    "(cel-python returns `5` for `true && 5`, and `err || err` can raise IndexError while it formats "
    "its message, escaping an enclosing `|| true`)",
    "has_presence": "`has(e.f)` is an error when `e` is an error or not a map (cel-python: false)",
    "macro_semantics": "comprehension errors are values (cel-python raises them past `&&`/`||`); a range "
    "that is not a list or map (a string) is an error; non-bool predicates are errors; `map` takes a filter",
    "list_index": "list indexes must be int/uint/integral double in range (cel-python wraps negative "
    "indexes); map keys keep `true` and `1` apart; strings and bytes are not indexable",
    "literal_errors": "a map literal with an error key or value is that error (cel-python builds the map)",
    "size_null": "`size(null)` is an error (cel-python: 0)",
    "string_functions": "`contains`/`startsWith`/`endsWith`/`matches` apply to strings only "
    "(cel-python's `contains` also searches lists and maps, `matches` bytes)",
    "strict_conversions": "conversions accept only the argument types the spec lists (cel-python: "
    "`int(true)` is 1, `string(null)` is `None`, `string(true)` is `True`, `bool('2')` is truthy)",
}

_NUM: Final = frozenset(["int", "uint", "double"])


def _kind(value: Any) -> str:
    if isinstance(value, ev.CELEvalError):
        return "error"
    if value is None:
        return "null"
    if isinstance(value, (ct.BoolType, bool)):
        return "bool"
    if isinstance(value, ct.UintType):
        return "uint"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, _dt.datetime):
        return "timestamp"
    if isinstance(value, _dt.timedelta):
        return "duration"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, type):
        return "type"
    return "other"


def spec_equal(a: Any, b: Any) -> bool:
    ka, kb = _kind(a), _kind(b)
    if ka in _NUM and kb in _NUM:
        if "double" in (ka, kb):
            return float(a) == float(b)
        return int(a) == int(b)
    if ka != kb:
        return False
    if ka == "list":
        return len(a) == len(b) and all(spec_equal(x, y) for x, y in zip(a, b))
    if ka == "map":
        if len(a) != len(b):
            return False
        for key, value in a.items():
            match = [k for k in b if spec_equal(k, key)]
            if not match or not spec_equal(value, b[match[0]]):
                return False
        return True
    if ka == "double":
        return float(a) == float(b)
    if ka == "null":
        return True
    return bool(a == b) if ka != "bool" else bool(a) == bool(b)


def _errors_first(*values: Any) -> Any:
    for v in values:
        if isinstance(v, ev.CELEvalError):
            return v
    return None


def _eq(a: Any, b: Any) -> Any:
    return _errors_first(a, b) or ct.BoolType(spec_equal(a, b))


def _ne(a: Any, b: Any) -> Any:
    return _errors_first(a, b) or ct.BoolType(not spec_equal(a, b))


def _ordering(
    original: Callable[[Any, Any], Any], compare: Callable[[Any, Any], bool]
) -> Callable[[Any, Any], Any]:
    def patched(a: Any, b: Any) -> Any:
        err = _errors_first(a, b)
        if err is not None:
            return err
        ka, kb = _kind(a), _kind(b)
        if ka in _NUM and kb in _NUM and ka != kb:
            if "double" in (ka, kb):
                return ct.BoolType(compare(float(a), float(b)))
            return ct.BoolType(compare(int(a), int(b)))
        if ka != kb or ka not in (
            "int",
            "uint",
            "double",
            "string",
            "bytes",
            "bool",
            "timestamp",
            "duration",
        ):
            raise TypeError("no such overload")
        return original(a, b)

    return patched


_ARITH_KINDS: Final = {
    "+": {
        ("int", "int"),
        ("uint", "uint"),
        ("double", "double"),
        ("string", "string"),
        ("bytes", "bytes"),
        ("list", "list"),
        ("timestamp", "duration"),
        ("duration", "timestamp"),
        ("duration", "duration"),
    },
    "-": {
        ("int", "int"),
        ("uint", "uint"),
        ("double", "double"),
        ("timestamp", "timestamp"),
        ("timestamp", "duration"),
        ("duration", "duration"),
    },
    "*": {("int", "int"), ("uint", "uint"), ("double", "double")},
    "/": {("int", "int"), ("uint", "uint"), ("double", "double")},
    "%": {("int", "int"), ("uint", "uint")},
}


def _arithmetic(op: str, original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def patched(a: Any, b: Any) -> Any:
        err = _errors_first(a, b)
        if err is not None:
            return err
        kinds = (_kind(a), _kind(b))
        if kinds not in _ARITH_KINDS[op]:
            raise TypeError("no such overload")
        if op == "/" and kinds == ("double", "double") and float(b) == 0.0:
            x = float(a)
            if x == 0.0 or math.isnan(x):
                return ct.DoubleType(math.nan)
            return ct.DoubleType(math.copysign(math.inf, x) * math.copysign(1.0, float(b)))
        if op == "%" and kinds == ("int", "int") and int(a) == -(2**63) and int(b) == -1:
            raise ValueError("overflow")
        return original(a, b)

    return patched


def _negate(value: Any) -> Any:
    if _kind(value) not in ("int", "double", "error"):
        raise TypeError("no such overload")
    return operator.neg(value)


def _in(item: Any, container: Any) -> Any:
    err = _errors_first(item, container)
    if err is not None:
        return err
    kind = _kind(container)
    if kind == "list":
        return ct.BoolType(any(spec_equal(item, element) for element in container))
    if kind == "map":
        return ct.BoolType(any(spec_equal(item, key) for key in container))
    raise TypeError("no such overload")


def _index(container: Any, key: Any) -> Any:
    kind, key_kind = _kind(container), _kind(key)
    if kind == "list":
        if key_kind == "double" and math.isfinite(key) and float(key).is_integer():
            key = int(key)
        elif key_kind not in ("int", "uint"):
            raise IndexError("invalid list index type")
        if not 0 <= int(key) < len(container):
            raise IndexError("index out of range")
        return container[int(key)]
    if kind == "map":
        for candidate in container:
            if spec_equal(candidate, key):
                return container[candidate]
        raise KeyError(key)
    raise TypeError("no such overload")  # cel-python indexes strings and bytes


def _size(value: Any) -> Any:
    if value is None:
        raise TypeError("no such overload")
    return ev.function_size(value)


def _string_function(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def patched(text: Any, other: Any) -> Any:
        if _kind(text) != "string" or _kind(other) != "string":
            raise TypeError("no such overload")
        return original(text, other)

    return patched


def _logic(decide: bool) -> Callable[[Any, Any], Any]:
    """``&&`` (decide=False) or ``||`` (decide=True) with CEL's commutative absorption."""

    def patched(a: Any, b: Any) -> Any:
        a_bool, b_bool = isinstance(a, ct.BoolType), isinstance(b, ct.BoolType)
        if a_bool and bool(a) == decide:
            return a
        if b_bool and bool(b) == decide:
            return b
        if a_bool and b_bool:
            return ct.BoolType(not decide)
        other = b if a_bool else a
        return other if isinstance(other, ev.CELEvalError) else ev.CELEvalError("no such overload")

    return patched


_CONVERSIONS: Final = {
    "int": ("int", "uint", "double", "string", "timestamp"),
    "uint": ("uint", "int", "double", "string"),
    "double": ("double", "int", "uint", "string"),
    "string": ("string", "bool", "int", "uint", "double", "bytes", "timestamp", "duration"),
    "bytes": ("bytes", "string"),
    "bool": ("bool", "string"),
}


def _conversion(name: str, args: list[Any]) -> Any:
    """The corrected result of conversion ``name``, or None to let cel-python convert."""
    if len(args) != 1:
        return None
    value = args[0]
    kind = _kind(value)
    if kind == "error":
        return value
    if kind not in _CONVERSIONS[name]:
        return ev.CELEvalError("no such overload")
    if name == "string" and kind == "bool":
        return ct.StringType("true" if value else "false")
    if name == "bool" and kind == "string":
        if value in ("1", "t", "true", "TRUE", "True"):
            return ct.BoolType(True)
        if value in ("0", "f", "false", "FALSE", "False"):
            return ct.BoolType(False)
        return ev.CELEvalError("type conversion error")
    return None


def corrected_functions(corrections: frozenset[str]) -> dict[str, Callable[..., Any]]:
    """cel-python function overrides for the chosen corrections."""
    base = ev.base_functions
    table: dict[str, Callable[..., Any]] = {}
    if "heterogeneous_equality" in corrections:
        table.update({"_==_": _eq, "_!=_": _ne, "_in_": _in})
    if "numeric_ordering" in corrections:
        for name, compare in (
            ("_<_", operator.lt),
            ("_<=_", operator.le),
            ("_>_", operator.gt),
            ("_>=_", operator.ge),
        ):
            table[name] = _ordering(base[name], compare)
    if "strict_arithmetic" in corrections:
        for op in "+-*/%":
            table[f"_{op}_"] = _arithmetic(op, base[f"_{op}_"])
        table["-_"] = _negate
    if "strict_logic" in corrections:
        table["_&&_"] = _logic(False)
        table["_||_"] = _logic(True)
    if "list_index" in corrections:
        table["_[_]"] = _index
    if "size_null" in corrections:
        table["size"] = _size
    if "string_functions" in corrections:
        for name in ("contains", "startsWith", "endsWith", "matches"):
            table[name] = _string_function(base[name])
    return table


def _descend(tree: LTree, data: str) -> LTree | None:
    while isinstance(tree, lark.Tree):
        if tree.data == data:
            return tree
        if len(tree.children) != 1:
            return None
        tree = tree.children[0]  # type: ignore[assignment]
    return None


def _corrected_evaluator(corrections: frozenset[str]) -> type[ev.Evaluator]:
    class Corrected(ev.Evaluator):
        def sub_evaluator(self, ast: LTree) -> ev.Evaluator:
            return Corrected(ast, activation=self.activation)

        def macro_has_eval(self, exprlist: LTree) -> Any:
            if "has_presence" not in corrections:
                return super().macro_has_eval(exprlist)
            member_dot = _descend(exprlist.children[0], "member_dot")  # type: ignore[arg-type]
            if member_dot is None:
                return super().macro_has_eval(exprlist)
            operand_tree, field = member_dot.children
            operand = self.visit(operand_tree)  # type: ignore[arg-type]
            if isinstance(operand, ev.CELEvalError):
                return operand
            if isinstance(operand, Mapping):
                return ct.BoolType(str(field) in operand)
            return ev.CELEvalError("no such overload")

        def function_eval(self, name_token: lark.Token, exprlist: Any = None) -> Any:
            # Conversions are corrected here, not in the function table: `int` must stay
            # cel-python's type object when used as a type denotation.
            if "strict_conversions" in corrections and str(name_token) in _CONVERSIONS:
                corrected = _conversion(str(name_token), list(exprlist or []))
                if corrected is not None:
                    return corrected
            return super().function_eval(name_token, exprlist)

        def mapinits(self, tree: LTree) -> Any:
            if "literal_errors" in corrections:
                for value in self.visit_children(tree):
                    if isinstance(value, ev.CELEvalError):
                        return value
            return super().mapinits(tree)

        def member_dot_arg(self, tree: LTree) -> Any:
            name = str(tree.children[1])
            if "macro_semantics" not in corrections or name not in _MACROS or len(tree.children) != 3:
                return super().member_dot_arg(tree)
            return _macro(self, tree, name)

    return Corrected


_MACROS: Final = frozenset(["all", "exists", "exists_one", "map", "filter"])


def _macro(evaluator: ev.Evaluator, tree: LTree, name: str) -> Any:
    args = [c for c in tree.children[2].children if isinstance(c, lark.Tree)]  # type: ignore[union-attr]
    if name == "map" and len(args) not in (2, 3) or name != "map" and len(args) != 2:
        return ev.CELEvalError("wrong number of macro arguments")
    idents = list(args[0].find_data("ident"))
    var = str(idents[0].children[0])
    rng = evaluator.visit(tree.children[0])  # type: ignore[arg-type]
    if isinstance(rng, ev.CELEvalError):
        return rng
    if not isinstance(rng, (list, tuple, Mapping)):
        return ev.CELEvalError("no such overload")

    def run(expr: LTree, item: Any) -> Any:
        try:
            return evaluator.sub_evaluator(expr).evaluate({var: item})
        except ev.CELEvalError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - cel-python leaks raw exceptions: they are errors
            return ev.CELEvalError(f"{type(exc).__name__}")

    items = list(rng)
    if name in ("all", "exists"):
        decide = name == "exists"
        error = None
        for item in items:
            value = run(args[1], item)
            if isinstance(value, ct.BoolType):
                if bool(value) == decide:
                    return ct.BoolType(decide)
            elif error is None:
                error = value if isinstance(value, ev.CELEvalError) else ev.CELEvalError("no such overload")
        return error if error is not None else ct.BoolType(not decide)
    if name == "exists_one":
        count = 0
        for item in items:
            value = run(args[1], item)
            if not isinstance(value, ct.BoolType):
                return value if isinstance(value, ev.CELEvalError) else ev.CELEvalError("no such overload")
            count += bool(value)
        return ct.BoolType(count == 1)
    result = []
    for item in items:
        if name == "filter" or len(args) == 3:
            keep = run(args[1], item)
            if not isinstance(keep, ct.BoolType):
                return keep if isinstance(keep, ev.CELEvalError) else ev.CELEvalError("no such overload")
            if not keep:
                continue
            if name == "filter":
                result.append(item)
                continue
        value = run(args[-1], item)
        if isinstance(value, ev.CELEvalError):
            return value
        result.append(value)
    return ct.ListType(result)


def _unquote_fields(tree: LTree) -> LTree:
    """cel-python reads backtick-quoted field names (our grammar addition) as plain ones."""
    for sub in tree.iter_subtrees():
        if sub.data == "member_dot" and isinstance(sub.children[1], lark.Token):
            token = sub.children[1]
            if token.type == "QUOTED_IDENT":
                sub.children[1] = token.update("IDENT", str(token)[1:-1])
    return tree


class InterpreterRunner:
    """Evaluates a parse tree with cel-python, taking and returning native values."""

    def __init__(
        self,
        tree: LTree,
        functions: Mapping[str, CelFunction],
        corrections: frozenset[str] = frozenset(),
    ) -> None:
        table: dict[str, Callable[..., Any]] = corrected_functions(corrections)
        for fn in functions.values():
            table[fn.name] = _wrap_custom(fn)
        env = celpy.Environment()
        self._runner = env.program(_unquote_fields(copy.deepcopy(tree)), functions=table)
        evaluator = _corrected_evaluator(corrections) if corrections else None
        if evaluator is not None:
            runner = self._runner

            def evaluate(context: Any) -> Any:
                e = evaluator(ast=runner.ast, activation=runner.new_activation())
                return e.evaluate(context)

            self._evaluate: Callable[[Any], Any] = evaluate
        else:
            self._evaluate = self._runner.evaluate

    def run(self, activation: Mapping[str, Any], budget: object = None) -> Any:
        try:
            context = {name: to_cel(value) for name, value in activation.items()}
        except (TypeError, ValueError) as exc:
            return CELError(f"activation not representable in cel-python: {exc}")
        try:
            return from_cel(self._evaluate(context))
        except ev.CELEvalError as exc:
            return from_cel(exc)
        except RecursionError:
            return CELError("interpreter raised RecursionError")
        except Exception as exc:  # noqa: BLE001 - a leaked Python exception counts as an error
            return CELError(f"interpreter raised {type(exc).__name__}: {exc}")


def _wrap_custom(fn: CelFunction) -> Callable[..., Any]:
    from ._functions import custom_caller

    call = custom_caller(fn)

    def wrapper(*args: Any) -> Any:
        result = call(*(from_cel(a) for a in args))
        if type(result) is CELError:
            return ev.CELEvalError(result.message)
        return to_cel(result)

    return wrapper
