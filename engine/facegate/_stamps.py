"""A decision's id and timestamp, at a fraction of ``uuid.uuid4()`` and ``datetime.isoformat()``.

Both are read for nearly every decision that is recorded or serialised, so they are on the hot
path of ``to_dict()`` / ``to_json()``:

* :func:`new_id` is a random (version 4) UUID string, the same as ``str(uuid.uuid4())``: its
  random bits come from ``os.urandom``, 256 ids made per call; a forked child drops the ids
  the parent made and did not hand out, so two processes never hand out the same id.
* :func:`utc_iso` is ``datetime.fromtimestamp(t, UTC).isoformat()``, the date and time to the
  second formatted once per second and the microseconds (rounded half to even, as ``datetime``
  rounds them) appended.
"""

from __future__ import annotations

import datetime as _dt
import math
import os

_BATCH = 256  # ids made per os.urandom call
_ready: list[str] = []  # made, not yet handed out (list.pop is atomic: no lock is needed)
#: the variant nibble of an RFC 4122 UUID: binary 10xx, the low two bits random
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _drop_unused() -> None:
    _ready.clear()


os.register_at_fork(after_in_child=_drop_unused)


def new_id() -> str:
    """A random (version 4) UUID string."""
    while True:
        try:
            return _ready.pop()
        except IndexError:
            _ready.extend(_batch())


def _batch() -> list[str]:
    h = os.urandom(16 * _BATCH).hex()
    v = _VARIANT
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{v[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}" for i in range(0, 32 * _BATCH, 32)]


_second: tuple[float, str] = (math.nan, "")
_DIGITS = tuple(f"{i:03d}" for i in range(1000))  # the microseconds as two groups of three digits, looked up


def utc_iso(clock: float) -> str:
    """``datetime.datetime.fromtimestamp(clock, datetime.UTC).isoformat()``."""
    global _second
    fraction, whole = math.modf(clock)
    if fraction < 0:  # before 1970: datetime counts microseconds up from the second below
        fraction += 1.0
        whole -= 1.0
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        micro -= 1_000_000
        whole += 1.0
    second, text = _second
    if second != whole:
        text = _dt.datetime.fromtimestamp(whole, _dt.UTC).replace(tzinfo=None).isoformat()
        _second = (whole, text)  # one tuple: a thread sees an old second or the new one, whole
    return f"{text}.{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}+00:00" if micro else f"{text}+00:00"
