"""The general (slow) path of every CEL operator, on native Python values.

Generated programs inline a fast path for the common operand types and call these
functions for everything else.  Every function accepts :class:`CELError` operands and
propagates them (left operand first), and returns a value or a :class:`CELError`; none
raises.  Python's ``bool`` is an ``int`` and ``1 == 1.0`` is true in Python too: the
type checks below are what keep ``true == 1`` false and ``1 in [true]`` false.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ._values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    CELError,
    CelType,
    Duration,
    Timestamp,
    make_duration,
    make_timestamp,
    type_name,
)
from ._values import UInt as _UInt

MISSING: Final = object()
_NUM: Final = frozenset([int, _UInt, float])
_INTEGRAL: Final = frozenset([int, _UInt])
_SIMPLE_EQ: Final = frozenset([int, str, bool, bytes, float, type(None), _UInt, Timestamp, Duration, CelType])
_ORDERED: Final = frozenset([int, _UInt, float, str, bytes, bool, Timestamp, Duration])
_KEY_TYPES: Final = frozenset([int, _UInt, bool, str])
_KNOWN: Final = _SIMPLE_EQ | {list, dict}


def no_overload(op: str, *args: Any) -> CELError:
    types = ", ".join(type_name(a) for a in args)
    return CELError(f"no such overload: `{op}` applied to `({types})`")


def first_error(*values: Any) -> CELError | None:
    for v in values:
        if type(v) is CELError:
            return v
    return None


def as_bool_error(value: Any, op: str) -> CELError:
    """The error a non-bool operand of ``&&``, ``||``, ``!`` or ``?:`` becomes."""
    return value if type(value) is CELError else no_overload(op, value)


def _norm(value: Any) -> Any:
    """Map ``Mapping``/``Sequence``/subclass inputs onto the exact types the fast paths know."""
    t = type(value)
    if t in _SIMPLE_EQ or t is list or t is dict or t is CELError:
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, _UInt):
        return _UInt(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence):
        return list(value)
    return value


# -- equality and ordering ------------------------------------------------------------


def equals(a: Any, b: Any) -> bool:
    """CEL equality of two non-error values: by value across int/uint/double, else by type."""
    ta, tb = type(a), type(b)
    if ta is tb and ta in _SIMPLE_EQ:
        return bool(a == b)
    if ta not in _KNOWN:
        a = _norm(a)
        ta = type(a)
    if tb not in _KNOWN:
        b = _norm(b)
        tb = type(b)
    if ta is not tb:
        if ta in _NUM and tb in _NUM:
            if ta is float or tb is float:
                return float(a) == float(b)
            return int(a) == int(b)
        return False
    if ta in _SIMPLE_EQ:
        return bool(a == b)
    if ta is list:
        return len(a) == len(b) and all(equals(x, y) for x, y in zip(a, b))
    if ta is dict:
        if len(a) != len(b):
            return False
        for key, value in a.items():
            other = map_get(b, key)
            if other is MISSING or not equals(value, other):
                return False
        return True
    return False


def _unsupported(*values: Any) -> CELError | None:
    for v in values:
        if type(v) not in _KNOWN and type_name(v).startswith("unsupported"):
            return CELError(f"{type_name(v)}")
    return None


def eq(a: Any, b: Any) -> Any:
    err = first_error(a, b) or _unsupported(a, b)
    return err if err is not None else equals(a, b)


def ne(a: Any, b: Any) -> Any:
    err = first_error(a, b) or _unsupported(a, b)
    return err if err is not None else not equals(a, b)


def _compare(op: str, a: Any, b: Any) -> Any:
    """-1, 0 or 1 (or None for NaN), or an error when ``a`` and ``b`` have no ordering."""
    err = first_error(a, b)
    if err is not None:
        return err
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is not tb:
        if ta in _NUM and tb in _NUM:
            if ta is float or tb is float:
                # The integer side converts to double, as cel-go does.
                a, b = float(a), float(b)
            else:
                a, b = int(a), int(b)
        else:
            return no_overload(op, a, b)
    elif ta not in _ORDERED:
        return no_overload(op, a, b)
    if a < b:
        return -1
    if a > b:
        return 1
    if a == b:
        return 0
    return None  # NaN: every ordering is false


def lt(a: Any, b: Any) -> Any:
    c = _compare("_<_", a, b)
    return c if type(c) is CELError else c == -1


def le(a: Any, b: Any) -> Any:
    c = _compare("_<=_", a, b)
    return c if type(c) is CELError else (c == -1 or c == 0)


def gt(a: Any, b: Any) -> Any:
    c = _compare("_>_", a, b)
    return c if type(c) is CELError else c == 1


def ge(a: Any, b: Any) -> Any:
    c = _compare("_>=_", a, b)
    return c if type(c) is CELError else (c == 1 or c == 0)


# -- maps, lists, fields ------------------------------------------------------------------


def map_get(m: Mapping[Any, Any], key: Any) -> Any:
    """``m[key]`` with CEL key equality (``true`` is not ``1``; ``1u``, ``1`` and ``1.0`` are
    one key), or :data:`MISSING`; a key of a type maps cannot hold is simply absent."""
    tk = type(key)
    if tk is str:
        return m.get(key, MISSING)
    if tk not in _KEY_TYPES and tk is not float:
        key = _norm(key)
        tk = type(key)
        if tk not in _KEY_TYPES and tk is not float:
            return MISSING
    if tk is float and not (math.isfinite(key) and key.is_integer()):
        return MISSING
    try:
        value = m.get(key, MISSING)
    except TypeError:
        return MISSING
    if value is not MISSING and (key == 0 or key == 1):
        # Python's True == 1 == 1.0: make sure the stored key has the same bool-ness.
        want_bool = tk is bool
        for stored in m:
            if stored == key and type(stored) is not str and (type(stored) is bool) == want_bool:
                return value
        return MISSING
    return value


def select(value: Any, field: str) -> Any:
    """``value.field``: a map key (the only kind of field without protobuf messages)."""
    if type(value) is dict or (type(value) is not CELError and isinstance(value, Mapping)):
        found = value.get(field, MISSING)
        return CELError(f"no such key: `{field}`") if found is MISSING else found
    if type(value) is CELError:
        return value
    return CELError(f"type `{type_name(value)}` does not support field selection (`.{field}`)")


def select_path(value: Any, fields: tuple[str, ...]) -> Any:
    for field in fields:
        value = select(value, field)
        if type(value) is CELError:
            return value
    return value


def has(value: Any, field: str) -> Any:
    """``has(value.field)``: whether a map has the key; an error for anything else."""
    if type(value) is dict or (type(value) is not CELError and isinstance(value, Mapping)):
        return field in value
    if type(value) is CELError:
        return value
    return CELError(f"type `{type_name(value)}` does not support field presence test `has(.{field})`")


def resolve(activation: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    """The value of the dotted name ``names``: the longest prefix bound in the activation
    is the variable, the rest are field selections (CEL's qualified name resolution)."""
    for cut in range(len(names), 0, -1):
        key = ".".join(names[:cut]) if cut > 1 else names[0]
        if key in activation:
            return select_path(activation[key], names[cut:])
    return CELError(f"undeclared reference to `{'.'.join(names[:1])}`")


def variable(activation: Mapping[str, Any], name: str) -> Any:
    try:
        return activation[name]
    except (KeyError, TypeError):
        return CELError(f"undeclared reference to `{name}`")


def index(container: Any, key: Any) -> Any:
    err = first_error(container, key)
    if err is not None:
        return err
    container = _norm(container)
    tc = type(container)
    if tc is list:
        key = _norm(key)
        tk = type(key)
        if tk is float and math.isfinite(key) and key.is_integer():
            key = int(key)
        elif tk not in _INTEGRAL:
            return CELError(f"invalid list index type `{type_name(key)}`")
        if 0 <= key < len(container):
            return container[key]
        return CELError(f"index out of range: `{key}`")
    if tc is dict:
        found = map_get(container, key)
        if found is MISSING:
            return CELError(f"no such key: `{key!r}`" if type(key) is not str else f"no such key: `{key}`")
        return found
    return no_overload("_[_]", container, key)


def contains(item: Any, container: Any) -> Any:
    """``item in container``."""
    err = first_error(item, container)
    if err is not None:
        return err
    container = _norm(container)
    tc = type(container)
    if tc is list:
        if type(item) is str:
            return item in container
        return any(equals(item, element) for element in container)
    if tc is dict:
        return map_get(container, item) is not MISSING
    return no_overload("@in", item, container)


def make_map(*flat: Any) -> Any:
    """A map literal from alternating keys and values, with CEL's key rules."""
    err = first_error(*flat)
    if err is not None:
        return err
    result: dict[Any, Any] = {}
    for i in range(0, len(flat), 2):
        key = _norm(flat[i])
        if type(key) not in _KEY_TYPES:
            return CELError(f"unsupported map key type `{type_name(key)}`")
        if map_get(result, key) is not MISSING:
            return CELError(f"repeated map key `{key!r}`")
        if key in result:
            # `true` and `1` are distinct CEL keys but one Python dict key.
            return CELError(f"map keys `{key!r}` of different types cannot be held together")
        result[key] = flat[i + 1]
    return result


def make_list(*items: Any) -> Any:
    err = first_error(*items)
    return err if err is not None else list(items)


def iter_range(value: Any, macro: str) -> Any:
    """What a comprehension iterates: a list's elements or a map's keys (as a list)."""
    t = type(value)
    if t is list or t is dict:
        return value
    if t is CELError:
        return value
    value = _norm(value)
    if type(value) is list or type(value) is dict:
        return value
    return no_overload(macro, value)


# -- arithmetic ----------------------------------------------------------------------


def _int_result(value: int) -> Any:
    return value if INT64_MIN <= value <= INT64_MAX else CELError("return error for overflow")


def _uint_result(value: int) -> Any:
    return _UInt(value) if 0 <= value <= UINT64_MAX else CELError("return error for overflow")


def add(a: Any, b: Any) -> Any:
    err = first_error(a, b)
    if err is not None:
        return err
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return _int_result(a + b)
        if ta is _UInt:
            return _uint_result(int(a) + int(b))
        if ta is float or ta is str or ta is bytes or ta is list:
            return a + b
        if ta is Duration:
            return make_duration(a.nanos + b.nanos)
    elif ta is Timestamp and tb is Duration or ta is Duration and tb is Timestamp:
        return make_timestamp(a.nanos + b.nanos)
    return no_overload("_+_", a, b)


def sub(a: Any, b: Any) -> Any:
    err = first_error(a, b)
    if err is not None:
        return err
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return _int_result(a - b)
        if ta is _UInt:
            return _uint_result(int(a) - int(b))
        if ta is float:
            return a - b
        if ta is Duration:
            return make_duration(a.nanos - b.nanos)
        if ta is Timestamp:
            return make_duration(a.nanos - b.nanos)
    elif ta is Timestamp and tb is Duration:
        return make_timestamp(a.nanos - b.nanos)
    return no_overload("_-_", a, b)


def mul(a: Any, b: Any) -> Any:
    err = first_error(a, b)
    if err is not None:
        return err
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return _int_result(a * b)
        if ta is _UInt:
            return _uint_result(int(a) * int(b))
        if ta is float:
            return a * b
    return no_overload("_*_", a, b)


def div(a: Any, b: Any) -> Any:
    err = first_error(a, b)
    if err is not None:
        return err
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int or ta is _UInt:
            if b == 0:
                return CELError("division by zero")
            quotient = abs(int(a)) // abs(int(b))
            if (a < 0) != (b < 0):
                quotient = -quotient
            return _int_result(quotient) if ta is int else _uint_result(quotient)
        if ta is float:
            if b == 0.0:
                if a == 0.0 or math.isnan(a):
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
    return no_overload("_/_", a, b)


def mod(a: Any, b: Any) -> Any:
    err = first_error(a, b)
    if err is not None:
        return err
    a, b = _norm(a), _norm(b)
    ta, tb = type(a), type(b)
    if ta is tb and (ta is int or ta is _UInt):
        if b == 0:
            return CELError("modulus by zero")
        if ta is int and a == INT64_MIN and b == -1:
            return CELError("return error for overflow")
        remainder = abs(int(a)) % abs(int(b))
        return (-remainder if a < 0 else remainder) if ta is int else _UInt(remainder)
    return no_overload("_%_", a, b)


def neg(a: Any) -> Any:
    if type(a) is CELError:
        return a
    a = _norm(a)
    ta = type(a)
    if ta is int:
        return _int_result(-a)
    if ta is float:
        return -a
    return no_overload("-_", a)  # the spec negates int and double only


def not_(a: Any) -> Any:
    if a is True:
        return False
    if a is False:
        return True
    return as_bool_error(a, "!_")
