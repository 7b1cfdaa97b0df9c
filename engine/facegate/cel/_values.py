"""CEL values as plain Python, plus the four small wrapper types CEL needs.

CEL type        Python value
--------------  ------------------------------------------------------------
int             ``int`` (never ``bool``), within int64
uint            :class:`UInt` (an ``int`` subclass), within uint64
double          ``float``
bool            ``bool``
string          ``str``
bytes           ``bytes``
null_type       ``None``
list            ``list`` (``tuple`` accepted as input)
map             ``dict`` (any ``Mapping`` accepted as input)
timestamp       :class:`Timestamp` (nanoseconds since the Unix epoch, UTC)
duration        :class:`Duration` (nanoseconds)
type            :class:`CelType`
(error)         :class:`CELError` -- an evaluation error carried as a value

Nanosecond precision is why timestamps and durations are not ``datetime``/``timedelta``;
both convert to and from them.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any, Final, Self

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1
_NANOS: Final = 1_000_000_000
#: Timestamps span 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z, as in protobuf.
TIMESTAMP_MIN_SECONDS: Final = -62135596800
TIMESTAMP_MAX_SECONDS: Final = 253402300799
#: Durations are int64 nanoseconds (about +-292 years), as in cel-go: the conformance
#: suite expects ``timestamp('9999-..') - timestamp('0001-..')`` to be out of range.
DURATION_MIN_NANOS: Final = -(2**63)
DURATION_MAX_NANOS: Final = 2**63 - 1

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


class UInt(int):
    """A CEL ``uint``: an ``int`` in ``[0, 2**64)`` that CEL keeps distinct from ``int``."""

    __slots__ = ()

    def __new__(cls, value: int = 0) -> Self:
        number = int(value)
        if not 0 <= number <= UINT64_MAX:
            raise ValueError(f"uint out of range: `{number}`")
        return super().__new__(cls, number)

    def __repr__(self) -> str:
        return f"UInt({int(self)})"


class CELError:
    """An evaluation error carried as a value (never raised by the fast path).

    ``&&``, ``||``, the ternary and the ``all``/``exists`` macros may absorb it; every other
    operation propagates it.  Immutable, so instances may be shared between threads.
    """

    __slots__ = ("message",)
    message: str

    def __init__(self, message: str) -> None:
        object.__setattr__(self, "message", message)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CELError is immutable")

    def __repr__(self) -> str:
        return f"CELError({self.message!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is CELError and other.message == self.message

    def __hash__(self) -> int:
        return hash(("CELError", self.message))


@dataclass(frozen=True, slots=True)
class CelType:
    """A CEL type value, as returned by ``type(x)`` or written ``int``, ``list``..."""

    name: str

    def __repr__(self) -> str:
        return f"CelType({self.name!r})"


@dataclass(frozen=True, order=True, slots=True)
class Duration:
    """A CEL ``duration``: a signed number of nanoseconds."""

    nanos: int

    @classmethod
    def from_timedelta(cls, value: _dt.timedelta) -> Duration:
        return cls(((value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds) * 1000)

    def to_timedelta(self) -> _dt.timedelta:
        """Microsecond precision: sub-microsecond nanoseconds are truncated toward zero."""
        return _dt.timedelta(microseconds=int(self.nanos / 1000))

    @property
    def seconds(self) -> int:
        """Whole seconds, truncated toward zero (like protobuf's ``Duration.seconds``)."""
        return _trunc_div(self.nanos, _NANOS)

    def __str__(self) -> str:
        sign = "-" if self.nanos < 0 else ""
        whole, frac = divmod(abs(self.nanos), _NANOS)
        text = f"{sign}{whole}"
        if frac:
            text += "." + f"{frac:09d}".rstrip("0")
        return text + "s"


@dataclass(frozen=True, order=True, slots=True)
class Timestamp:
    """A CEL ``timestamp``: nanoseconds since 1970-01-01T00:00:00Z."""

    nanos: int

    @classmethod
    def from_datetime(cls, value: _dt.datetime) -> Timestamp:
        """An aware ``datetime``; a naive one is taken as UTC."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _EPOCH
        return cls(((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds) * 1000)

    def to_datetime(self) -> _dt.datetime:
        """An aware UTC ``datetime``; sub-microsecond nanoseconds are truncated."""
        seconds, nanos = divmod(self.nanos, _NANOS)
        return _EPOCH + _dt.timedelta(seconds=seconds, microseconds=nanos // 1000)

    @property
    def seconds(self) -> int:
        """Seconds since the epoch, rounded toward negative infinity."""
        return self.nanos // _NANOS

    def __str__(self) -> str:
        seconds, nanos = divmod(self.nanos, _NANOS)
        moment = _EPOCH + _dt.timedelta(seconds=seconds)
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        if len(text) < 19:  # years before 1000 lose their leading zeros on some platforms
            text = f"{moment.year:04d}" + text[text.index("-") :]
        if nanos:
            text += "." + f"{nanos:09d}".rstrip("0")
        return text + "Z"


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return -quotient if (a < 0) != (b < 0) else quotient


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_timestamp(text: str) -> Timestamp | CELError:
    """RFC 3339 (``2009-02-13T23:31:30Z``, optional fraction and offset) to a timestamp."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return CELError(f"timestamp parse error: `{text}`")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if year == 0:
        return CELError(f"timestamp out of range: `{text}`")
    try:
        moment = _dt.datetime(year, month, day, hour, minute, second, tzinfo=_dt.UTC)
    except ValueError:
        return CELError(f"timestamp parse error: `{text}`")
    fraction = m.group(7) or ""
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    offset = 0
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        if m.group(9) == "-":
            offset = -offset
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds - offset
    return make_timestamp(seconds * _NANOS + nanos)


def make_timestamp(nanos: int) -> Timestamp | CELError:
    if not TIMESTAMP_MIN_SECONDS * _NANOS <= nanos <= TIMESTAMP_MAX_SECONDS * _NANOS + _NANOS - 1:
        return CELError("timestamp out of range")
    return Timestamp(nanos)


def make_duration(nanos: int) -> Duration | CELError:
    if not DURATION_MIN_NANOS <= nanos <= DURATION_MAX_NANOS:
        return CELError("duration out of range")
    return Duration(nanos)


_DURATION_UNITS = {
    "ns": 1,
    "us": 1000,
    "µs": 1000,
    "μs": 1000,
    "ms": 1_000_000,
    "s": _NANOS,
    "m": 60 * _NANOS,
    "h": 3600 * _NANOS,
}
_DURATION_PART = re.compile(r"(\d+)?(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> Duration | CELError:
    """Go's duration syntax: ``100s``, ``1.5h``, ``-1h30m``, ``999999999ns``."""
    body = text
    negative = body.startswith("-")
    if body[:1] in "+-":
        body = body[1:]
    if body == "0":
        return Duration(0)
    if not body:
        return CELError(f"duration parse error: `{text}`")
    total = 0
    pos = 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or (m.group(1) is None and not m.group(2)):
            return CELError(f"duration parse error: `{text}`")
        unit = _DURATION_UNITS[m.group(3)]
        whole = int(m.group(1) or "0")
        frac = m.group(2) or ""
        total += whole * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        pos = m.end()
    return make_duration(-total if negative else total)


def type_name(value: Any) -> str:
    """The CEL type name of a value, for messages (``unsupported`` for foreign objects)."""
    kind = _TYPE_NAMES.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, UInt):
        return "uint"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "bytes"
    from collections.abc import Mapping, Sequence

    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, Sequence):
        return "list"
    return f"unsupported type {type(value).__name__}"


_TYPE_NAMES: dict[type, str] = {
    bool: "bool",
    int: "int",
    UInt: "uint",
    float: "double",
    str: "string",
    bytes: "bytes",
    type(None): "null_type",
    list: "list",
    tuple: "list",
    dict: "map",
    Timestamp: "google.protobuf.Timestamp",
    Duration: "google.protobuf.Duration",
    CelType: "type",
    CELError: "error",
}

#: Type denotations usable as identifiers in expressions (``type(x) == int``).
TYPE_DENOTATIONS: Final = {
    name: CelType(name)
    for name in (
        "bool",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "list",
        "map",
        "null_type",
        "type",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    )
}
