"""CEL's standard functions on native values, and the typed custom-function record.

Each implementation takes already-evaluated arguments (the receiver first for the
member form ``x.f(y)``), never raises, and returns a value or a :class:`CELError`.
The :data:`BUILTINS` table also carries the signatures the checker uses.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import functools
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import re2  # type: ignore[import-untyped]

from ._errors import CELUsageError
from ._runtime import first_error, no_overload
from ._values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    CELError,
    CelType,
    Duration,
    Timestamp,
    UInt,
    make_timestamp,
    parse_duration,
    parse_timestamp,
    type_name,
)

_NANOS: Final = 1_000_000_000


@dataclass(frozen=True)
class CelFunction:
    """A pure function callable from CEL, registered through ``register_cel_functions``.

    ``arg_types`` and ``result_type`` are CEL type names: ``int``, ``uint``, ``double``,
    ``bool``, ``string``, ``bytes``, ``list``, ``map``, ``null_type`` (or ``null``),
    ``timestamp``, ``duration`` or ``dyn`` (anything).  ``f(x, y)`` and ``x.f(y)`` both call it with
    ``x`` first.  Arguments are checked at compile time where their types are known and
    always at run time; an exception from ``impl`` becomes an error value.
    """

    name: str
    impl: Callable[..., Any]
    arg_types: tuple[str, ...]
    result_type: str

    def __post_init__(self) -> None:
        # The plugin registry spells `null_type` as `null`.
        object.__setattr__(
            self, "arg_types", tuple("null_type" if t == "null" else t for t in self.arg_types)
        )
        if self.result_type == "null":
            object.__setattr__(self, "result_type", "null_type")
        if not _NAME.fullmatch(self.name):
            raise CELUsageError(f"invalid cel function name `{self.name}`")
        for t in (*self.arg_types, self.result_type):
            if t not in _KIND_CHECKS:
                raise CELUsageError(f"unknown cel type `{t}` for function `{self.name}`")


_NAME: Final = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")

_KIND_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "dyn": lambda v: True,
    "int": lambda v: type(v) is int or (isinstance(v, int) and not isinstance(v, (bool, UInt))),
    "uint": lambda v: isinstance(v, UInt),
    "double": lambda v: isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, bytes),
    "list": lambda v: isinstance(v, (list, tuple)),
    "map": lambda v: isinstance(v, Mapping),
    "null_type": lambda v: v is None,
    "timestamp": lambda v: isinstance(v, Timestamp),
    "duration": lambda v: isinstance(v, Duration),
}


def custom_caller(fn: CelFunction) -> Callable[..., Any]:
    """Wrap a custom function with CEL's argument checks and error-value conventions."""
    checks = tuple(_KIND_CHECKS[t] for t in fn.arg_types)
    result_check = _KIND_CHECKS[fn.result_type]
    impl, name, arity = fn.impl, fn.name, len(fn.arg_types)

    def call(*args: Any) -> Any:
        err = first_error(*args)
        if err is not None:
            return err
        if len(args) != arity or not all(check(a) for check, a in zip(checks, args)):
            return no_overload(name, *args)
        try:
            result = impl(*args)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not escape a decision
            return CELError(f"function `{name}` failed: {type(exc).__name__}")
        if type(result) is CELError or result_check(result):
            return result
        return CELError(f"function `{name}` returned `{type_name(result)}`, not `{fn.result_type}`")

    call.__name__ = f"cel_{name}"
    return call


# -- strings -----------------------------------------------------------------------------


def size(value: Any) -> Any:
    if type(value) is CELError:
        return value
    if isinstance(value, (str, bytes, list, tuple, Mapping)):
        return len(value)
    return no_overload("size", value)


def _string_method(name: str, op: Callable[[str, str], bool]) -> Callable[[Any, Any], Any]:
    def method(text: Any, other: Any) -> Any:
        err = first_error(text, other)
        if err is not None:
            return err
        if isinstance(text, str) and isinstance(other, str):
            return op(text, other)
        return no_overload(name, text, other)

    return method


str_contains = _string_method("contains", lambda s, sub: sub in s)
starts_with = _string_method("startsWith", str.startswith)
ends_with = _string_method("endsWith", str.endswith)

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Any:
    """An RE2 regular expression, or a :class:`CELError` if ``pattern`` is invalid."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return CELError(f"invalid regular expression `{pattern}`: {detail}")


def matches(text: Any, pattern: Any) -> Any:
    err = first_error(text, pattern)
    if err is not None:
        return err
    if not (isinstance(text, str) and isinstance(pattern, str)):
        return no_overload("matches", text, pattern)
    regex = compile_regex(pattern)
    if type(regex) is CELError:
        return regex
    return regex.search(text) is not None


# -- conversions -------------------------------------------------------------------------

_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_UINT_TEXT: Final = re.compile(r"\+?[0-9]+")
_FLOAT_TEXT: Final = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)


def to_int(value: Any) -> Any:
    t = type(value)
    if t is int:
        return value
    if t is CELError:
        return value
    if t is UInt:
        return int(value) if value <= INT64_MAX else CELError("range error: uint out of int range")
    if t is float:
        # As cel-go: strictly inside (-2**63, 2**63) after truncation.
        if math.isfinite(value) and -9.223372036854775808e18 < value < 9.223372036854775808e18:
            return int(value)
        return CELError("range error: double out of int range")
    if t is str:
        if _INT_TEXT.fullmatch(value):
            number = int(value)
            if INT64_MIN <= number <= INT64_MAX:
                return number
            return CELError(f"range error: `{value}` out of int range")
        return CELError(f"cannot convert `{value}` to int")
    if t is Timestamp:
        return value.seconds
    return no_overload("int", value)


def to_uint(value: Any) -> Any:
    t = type(value)
    if t is UInt or t is CELError:
        return value
    if t is int:
        return UInt(value) if value >= 0 else CELError("range error: negative int to uint")
    if t is float:
        if math.isfinite(value) and 0 <= value < 1.8446744073709552e19:
            return UInt(int(value))
        return CELError("range error: double out of uint range")
    if t is str:
        if _UINT_TEXT.fullmatch(value):
            number = int(value)
            if number <= UINT64_MAX:
                return UInt(number)
            return CELError(f"range error: `{value}` out of uint range")
        return CELError(f"cannot convert `{value}` to uint")
    return no_overload("uint", value)


def to_double(value: Any) -> Any:
    t = type(value)
    if t is float or t is CELError:
        return value
    if t is int or t is UInt:
        return float(value)
    if t is str:
        if _FLOAT_TEXT.fullmatch(value):
            return float(value)
        return CELError(f"cannot convert `{value}` to double")
    return no_overload("double", value)


def format_double(value: float) -> str:
    """A double as cel-go prints it (Go's ``%g``, shortest round-trip digits)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    parts = decimal.Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, parts.digits)).rstrip("0") or "0"
    exponent = int(parts.exponent) + (len(parts.digits) - len(digits))
    sign = "-" if parts.sign else ""
    point = len(digits) + exponent  # the decimal point's position within `digits`
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:  # Go switches to %e at 6 digits for shortest output
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def to_string(value: Any) -> Any:
    t = type(value)
    if t is str or t is CELError:
        return value
    if t is bool:
        return "true" if value else "false"
    if t is int or t is UInt:
        return str(int(value))
    if t is float:
        return format_double(value)
    if t is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return CELError("invalid UTF-8 in bytes to string conversion")
    if t is Timestamp or t is Duration:
        return str(value)
    return no_overload("string", value)


def to_bytes(value: Any) -> Any:
    t = type(value)
    if t is bytes or t is CELError:
        return value
    if t is str:
        return value.encode("utf-8")
    return no_overload("bytes", value)


_TRUE_TEXT: Final = frozenset(["1", "t", "true", "TRUE", "True"])
_FALSE_TEXT: Final = frozenset(["0", "f", "false", "FALSE", "False"])


def to_bool(value: Any) -> Any:
    t = type(value)
    if t is bool or t is CELError:
        return value
    if t is str:
        if value in _TRUE_TEXT:
            return True
        if value in _FALSE_TEXT:
            return False
        return CELError(f"type conversion error: `{value}` to bool")
    return no_overload("bool", value)


def to_type(value: Any) -> Any:
    if type(value) is CELError:
        return value
    name = type_name(value)
    if name.startswith("unsupported"):
        return CELError(name)
    return CelType(name)


def dyn(value: Any) -> Any:
    return value


def to_timestamp(value: Any) -> Any:
    t = type(value)
    if t is Timestamp or t is CELError:
        return value
    if t is str:
        return parse_timestamp(value)
    if t is int:
        return make_timestamp(value * _NANOS)
    return no_overload("timestamp", value)


def to_duration(value: Any) -> Any:
    t = type(value)
    if t is Duration or t is CELError:
        return value
    if t is str:
        return parse_duration(value)
    return no_overload("duration", value)


# -- timestamp and duration accessors ----------------------------------------------------

_OFFSET: Final = re.compile(r"([+-]?)(\d{1,2}):(\d{2})")


@functools.lru_cache(maxsize=128)
def _zone(name: str) -> _dt.tzinfo | CELError:
    m = _OFFSET.fullmatch(name)
    if m is not None:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return _dt.timezone(_dt.timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return CELError(f"unknown time zone `{name}`")


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return -quotient if (a < 0) != (b < 0) else quotient


def _millis_component(nanos: int) -> int:
    total = _trunc_div(nanos, 1_000_000)
    return total - _trunc_div(total, 1000) * 1000


def _time_accessor(
    name: str, part: Callable[[_dt.datetime, int], int], duration_part: Callable[[int], int] | None
) -> Callable[..., Any]:
    """``ts.name()``/``ts.name(tz)`` on timestamps; ``d.name()`` on durations if given."""

    def accessor(value: Any, *args: Any) -> Any:
        err = first_error(value, *args)
        if err is not None:
            return err
        if type(value) is Duration and duration_part is not None and not args:
            return duration_part(value.nanos)
        if type(value) is not Timestamp or len(args) > 1 or (args and type(args[0]) is not str):
            return no_overload(name, value, *args)
        moment = value.to_datetime()
        if args:
            zone = _zone(args[0])
            if isinstance(zone, CELError):
                return zone
            moment = moment.astimezone(zone)
        return part(moment, value.nanos)

    return accessor


TIME_ACCESSORS: Final = {
    "getFullYear": _time_accessor("getFullYear", lambda d, n: d.year, None),
    "getMonth": _time_accessor("getMonth", lambda d, n: d.month - 1, None),
    "getDayOfYear": _time_accessor("getDayOfYear", lambda d, n: d.timetuple().tm_yday - 1, None),
    "getDayOfMonth": _time_accessor("getDayOfMonth", lambda d, n: d.day - 1, None),
    "getDate": _time_accessor("getDate", lambda d, n: d.day, None),
    "getDayOfWeek": _time_accessor("getDayOfWeek", lambda d, n: (d.weekday() + 1) % 7, None),
    "getHours": _time_accessor("getHours", lambda d, n: d.hour, lambda n: _trunc_div(n, 3600 * _NANOS)),
    "getMinutes": _time_accessor("getMinutes", lambda d, n: d.minute, lambda n: _trunc_div(n, 60 * _NANOS)),
    "getSeconds": _time_accessor("getSeconds", lambda d, n: d.second, lambda n: _trunc_div(n, _NANOS)),
    # Milliseconds come from the nanoseconds: offsets are whole minutes.
    "getMilliseconds": _time_accessor(
        "getMilliseconds", lambda d, n: (n % _NANOS) // 1_000_000, _millis_component
    ),
}


@dataclass(frozen=True)
class Builtin:
    """A standard function: where it may be called from and its signatures."""

    name: str
    impl: Callable[..., Any]
    member: bool  # callable as x.name(...), x being the first argument
    function: bool  # callable as name(...)
    signatures: tuple[tuple[tuple[str, ...], str], ...]  # (argument types, result type)


def _b(name: str, impl: Callable[..., Any], member: bool, function: bool, *sigs: str) -> Builtin:
    parsed = []
    for sig in sigs:
        args, result = sig.split("->")
        parsed.append((tuple(a for a in args.split(",") if a), result))
    return Builtin(name, impl, member, function, tuple(parsed))


_DURATION_ACCESSORS: Final = frozenset(["getHours", "getMinutes", "getSeconds", "getMilliseconds"])


def _builtins() -> dict[str, Builtin]:
    table = [
        _b("size", size, True, True, "string->int", "bytes->int", "list->int", "map->int"),
        _b("contains", str_contains, True, False, "string,string->bool"),
        _b("startsWith", starts_with, True, False, "string,string->bool"),
        _b("endsWith", ends_with, True, False, "string,string->bool"),
        _b("matches", matches, True, True, "string,string->bool"),
        _b(
            "int",
            to_int,
            False,
            True,
            "int->int",
            "uint->int",
            "double->int",
            "string->int",
            "timestamp->int",
        ),
        _b("uint", to_uint, False, True, "uint->uint", "int->uint", "double->uint", "string->uint"),
        _b(
            "double",
            to_double,
            False,
            True,
            "double->double",
            "int->double",
            "uint->double",
            "string->double",
        ),
        _b(
            "string",
            to_string,
            False,
            True,
            "string->string",
            "bool->string",
            "int->string",
            "uint->string",
            "double->string",
            "bytes->string",
            "timestamp->string",
            "duration->string",
        ),
        _b("bytes", to_bytes, False, True, "bytes->bytes", "string->bytes"),
        _b("bool", to_bool, False, True, "bool->bool", "string->bool"),
        _b("type", to_type, False, True, "dyn->type"),
        _b("dyn", dyn, False, True, "dyn->dyn"),
        _b(
            "timestamp",
            to_timestamp,
            False,
            True,
            "timestamp->timestamp",
            "string->timestamp",
            "int->timestamp",
        ),
        _b("duration", to_duration, False, True, "duration->duration", "string->duration"),
    ]
    for name, impl in TIME_ACCESSORS.items():
        sigs = ["timestamp->int", "timestamp,string->int"]
        if name in _DURATION_ACCESSORS:
            sigs.append("duration->int")
        table.append(_b(name, impl, True, False, *sigs))
    return {b.name: b for b in table}


BUILTINS: Final = _builtins()
