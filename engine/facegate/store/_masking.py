"""Masking applied to every audit record before it is hashed and written.

Two things are removed, in this order:

1. **Biometric data, always** (it cannot be switched off): any value that is an array
   (anything exposing ``__array__`` / ``__array_interface__``: numpy, PIL, torch), any
   ``bytes``/``bytearray``/``memoryview``, any list of 16 or more plain numbers (an embedding
   spelled as JSON), and any value under a key whose last word is ``image``, ``template``,
   ``embedding``, ``vector``, ``crop``, ``photo``, ... (``face_image``, ``probeEmbedding``; but
   not ``template_id``) -- except values too small to carry biometric data: ``None``, booleans
   and lowercase tokens of at most 32 letters, such as the contract's ``storage.raw_image:
   "discard"``.  The value becomes a marker such as ``"[removed: ndarray float32 (128,)]"``.
2. **Identifiers at JSON pointers** (RFC 6901; a ``*`` segment matches every key or index):
   always ``/subject/id`` and ``/actor/id``, plus the pointers you configure.  Each pointer
   applies to the record *and* to its ``request`` object (the request facts of a decision
   record): ``/subject/id`` masks ``/subject/id`` and ``/request/subject/id``.  With ``identifiers="hmac"`` (default) the value becomes ``"hmac-sha256:<32 hex>"``, a keyed
   hash under a store-local secret, so records about the same person stay linkable by whoever
   holds the key (``AuditLog.pseudonym``); with ``identifiers="redact"`` it becomes ``"***"``.

The result is also made JSON-clean: tuples become lists, numpy scalars Python numbers,
datetimes ISO strings, enums their value, non-finite floats the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``.  Anything else is refused (``TypeError``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import math
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Literal

from ._canonical import canonical_json

DEFAULT_POINTERS = ("/subject/id", "/actor/id")  # always masked; also under /request
BIOMETRIC_WORDS = frozenset(
    {
        "image", "images", "img", "picture", "photo", "photos", "pixels", "frame", "frames",
        "crop", "crops", "thumbnail", "template", "templates", "embedding", "embeddings",
        "vector", "vectors", "descriptor", "descriptors", "faceprint", "biometric", "biometrics",
    }
)  # fmt: skip
NUMERIC_LIST_MIN = 16
REDACTED = "***"

_WORD_SPLIT = re.compile(r"[^0-9a-zA-Z]+|(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True)
class Masking:
    """What ``AuditLog.append`` masks; see the module docstring.

    ``pointers`` are masked in addition to ``DEFAULT_POINTERS``; ``biometric_words`` adds key
    words to the built-in set.  Neither default can be switched off.
    """

    pointers: Iterable[str] = ()
    identifiers: Literal["hmac", "redact"] = "hmac"
    biometric_words: Iterable[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        pointers = tuple(self.pointers)
        for pointer in pointers:
            if not isinstance(pointer, str) or not pointer.startswith("/"):
                raise ValueError(f"masking pointer `{pointer}` is not a JSON pointer (must start with `/`)")
        if self.identifiers not in ("hmac", "redact"):
            raise ValueError(f"masking identifiers `{self.identifiers}` is not `hmac` or `redact`")
        object.__setattr__(self, "pointers", pointers)
        words = frozenset(w.lower() for w in self.biometric_words)
        object.__setattr__(self, "biometric_words", words)


def _parse_pointer(pointer: str) -> tuple[str, ...]:
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer.split("/")[1:])


class Masker:
    """A ``Masking`` bound to its secret; ``mask(record)`` returns a new, JSON-clean dict."""

    def __init__(self, masking: Masking, key: bytes | None) -> None:
        self.masking = masking
        self._key = key
        pointers = dict.fromkeys((*DEFAULT_POINTERS, *masking.pointers))
        self._pointers = [_parse_pointer(p) for p in pointers]
        self._pointers += [("request", *parts) for parts in self._pointers]
        self._words = BIOMETRIC_WORDS | frozenset(masking.biometric_words)
        self._word_cache: dict[str, bool] = {}
        self._plain_keys: set[str] = set()  # keys seen not to be biometric (bounded)
        self._hmac = None if key is None else hmac.new(key, digestmod=hashlib.sha256)
        self._pseudonyms: dict[str, str] = {}  # recent identifiers (bounded)
        self._local = threading.local()  # ``floats``: whether the current ``mask`` call met a float

    def pseudonym(self, value: Any) -> str:
        """The masked form of an identifier, as it appears in the log."""
        if self.masking.identifiers == "redact":
            return REDACTED
        data = value if isinstance(value, str) else canonical_json(value)
        known = self._pseudonyms.get(data)
        if known is None:
            if self._hmac is None:
                raise ValueError("this store's mask key is kept outside the file; open it with `mask_key`")
            mac = self._hmac.copy()
            mac.update(data.encode("utf-8"))
            known = "hmac-sha256:" + mac.hexdigest()[:32]
            if len(self._pseudonyms) >= 8192:
                self._pseudonyms.clear()
            self._pseudonyms[data] = known
        return known

    def mask(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A masked, JSON-clean version of ``record``; the caller's objects are never modified.

        Unchanged sub-trees are shared with ``record`` rather than copied (the result is
        encoded at once); the containers on the way to a masked value are fresh copies.
        """
        return self.mask_noting_floats(record)[0]

    def mask_noting_floats(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """``mask(record)``, and whether the result may hold a float (``False``: it holds none,
        so ``canonical_json_floatless`` may encode it)."""
        if not isinstance(record, Mapping):
            raise TypeError(f"an audit record must be a mapping, not {type(record).__name__}")
        local = self._local
        local.floats = False
        try:
            cleaned = self._fast(record)
        except _Unclean:
            cleaned = self._clean(record, "")  # slow path: exotic types, or to name the bad path
            local.floats = True  # not tracked there: assume some
        out = dict(cleaned) if cleaned is record else cleaned
        fresh = {id(out)}  # containers already copied in this call: copy each at most once
        for parts in self._pointers:
            self._apply(out, parts, fresh)
        return out, bool(local.floats)

    # -- biometric removal and JSON cleaning ---------------------------------------------
    def _is_biometric_key(self, key: str) -> bool:
        known = self._word_cache.get(key)
        if known is None:
            words = [w for w in _WORD_SPLIT.split(key) if w]
            known = bool(words) and words[-1].lower() in self._words
            if len(self._word_cache) < 4096:
                self._word_cache[key] = known
        return known

    def _fast(self, value: Any) -> Any:
        """Plain dict/list/str/int/float/bool/None trees; returns ``value`` itself if unchanged.

        Raises ``_Unclean`` for anything else, handing over to ``_clean``.  Keys already seen
        to be harmless are skipped with one set difference per dict.
        """
        kind = type(value)
        if kind is dict:
            out = None
            unknown = value.keys() - self._plain_keys
            if unknown:
                for key in unknown:
                    if type(key) is not str:
                        raise _Unclean
                    if self._is_biometric_key(key):
                        if not _harmless(value[key]):
                            if out is None:
                                out = dict(value)
                            out[key] = _marker(value[key])
                    elif len(self._plain_keys) < 4096:
                        self._plain_keys.add(key)
            for key, item in value.items():
                leaf = type(item)
                if leaf is str or leaf is int or leaf is bool or item is None:
                    continue
                if leaf is float:
                    if item - item == 0.0:  # finite
                        self._local.floats = True
                        continue
                    raise _Unclean
                if out is not None and out[key] is not item:
                    continue  # already replaced by a marker
                new = self._fast(item)
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if kind is list:
            if len(value) >= NUMERIC_LIST_MIN and all(type(v) is float or type(v) is int for v in value):
                return f"[removed: {len(value)} numbers]"
            items = None
            for i, item in enumerate(value):
                leaf = type(item)
                if leaf is str or leaf is int or leaf is bool or item is None:
                    continue
                new = self._fast(item)
                if new is not item:
                    if items is None:
                        items = list(value)
                    items[i] = new
            return value if items is None else items
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float and value - value == 0.0:
            self._local.floats = True
            return value
        raise _Unclean

    def _clean_mapping(self, value: Mapping[Any, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                if key is None or isinstance(key, (bool, int, float)):
                    key = canonical_json(key)
                else:
                    raise TypeError(f"audit record key `{key!r}` at `{path or '/'}` is not a string")
            if self._is_biometric_key(key) and not _harmless(item):
                out[key] = _marker(item)
            else:
                out[key] = self._clean(item, path + "/" + key)
        return out

    def _clean(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        if isinstance(value, Mapping):
            return self._clean_mapping(value, path)
        if isinstance(value, (list, tuple)):
            if len(value) >= NUMERIC_LIST_MIN and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
            ):
                return f"[removed: {len(value)} numbers]"
            return [self._clean(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, (bytes, bytearray, memoryview)):
            return _marker(value)
        if hasattr(value, "__array_interface__") or hasattr(value, "__array__"):
            if getattr(value, "shape", None) == () and hasattr(value, "item"):
                return self._clean(value.item(), path)  # a numpy scalar, not an array
            return _marker(value)
        if isinstance(value, (set, frozenset)):
            return sorted((self._clean(v, path) for v in value), key=canonical_json)
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return self._clean(value.value, path)
        if isinstance(value, (uuid.UUID, PurePath)):
            return str(value)
        raise TypeError(f"audit record value at `{path or '/'}` of type {type(value).__name__} is not JSON")

    # -- identifiers at pointers -----------------------------------------------------------
    def _apply(self, node: Any, parts: tuple[str, ...], fresh: set[int]) -> None:
        """Replace the identifiers at ``parts`` under ``node`` (a fresh container), copying
        the containers below it on the way, since those may still be the caller's."""
        head, rest = parts[0], parts[1:]
        if isinstance(node, dict):
            keys = list(node) if head == "*" else ([head] if head in node else [])
            for key in keys:
                node[key] = self._replace(node[key], rest, fresh)
        elif isinstance(node, list):
            if head == "*":
                indexes: range = range(len(node))
            elif head.isdigit() and int(head) < len(node):
                indexes = range(int(head), int(head) + 1)
            else:
                return
            for i in indexes:
                node[i] = self._replace(node[i], rest, fresh)

    def _replace(self, value: Any, rest: tuple[str, ...], fresh: set[int]) -> Any:
        if not rest:
            return value if value is None else self.pseudonym(value)
        if id(value) not in fresh:
            if isinstance(value, dict):
                value = dict(value)
            elif isinstance(value, (list, tuple)):
                value = list(value)
            else:
                return value
            fresh.add(id(value))
        self._apply(value, rest, fresh)
        return value


_TOKEN = re.compile(r"[a-z_]{0,32}")


def _harmless(value: Any) -> bool:
    """Values too small to be biometric data, kept even under a biometric key:
    ``None``, booleans and short lowercase tokens such as ``storage.raw_image: "discard"``."""
    if value is None or type(value) is bool:
        return True
    return type(value) is str and _TOKEN.fullmatch(value) is not None


class _Unclean(Exception):
    """A value the fast path does not handle."""


def _marker(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"[removed: {len(value)} bytes]"
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if dtype is not None and shape is not None:
        return f"[removed: {type(value).__name__} {dtype} {tuple(shape)}]"
    return "[removed: biometric]"
