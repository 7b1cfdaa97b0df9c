"""A small protobuf text-format reader, enough for the CEL conformance files.

Schema-less: a message is a dict from field name to a list of values (every field may
repeat), a value is ``bytes`` (a string literal, unescaped), ``int``, ``float``, ``str``
(an identifier such as ``NULL_VALUE`` or ``true``) or a nested message dict.  Extension
and ``Any`` expansions (``[type.googleapis.com/...] { ... }``) become a field named by
the bracketed text, so callers can see -- and skip -- tests that need protobuf types.
Written by hand so the conformance runner needs no ``protobuf`` dependency.
"""

from __future__ import annotations

import re
from typing import Any

Scalar = bytes | int | float | str
Message = dict[str, list[Any]]  # values: Scalar or Message

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<bracket>\[[^\]]*\])
  | (?P<number>-?(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFuU]?)
  | (?P<ident>-?[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>[{}<>:,;\[\]])
    """,
    re.VERBOSE,
)

_SIMPLE_ESCAPES = {
    "a": 7,
    "b": 8,
    "f": 12,
    "n": 10,
    "r": 13,
    "t": 9,
    "v": 11,
    "\\": 92,
    "'": 39,
    '"': 34,
    "?": 63,
}


class TextProtoError(ValueError):
    """Malformed text-format input."""


def _unescape(body: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i + 1 :])
            assert digits is not None
            out.append(int(digits.group(), 8) & 0xFF)
            i += 1 + len(digits.group())
        elif nxt in "xX":
            digits = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2 :])
            if digits is None:
                raise TextProtoError(f"bad hex escape in `{body}`")
            out.append(int(digits.group(), 16))
            i += 2 + len(digits.group())
        elif nxt == "u":
            out += chr(int(body[i + 2 : i + 6], 16)).encode("utf-8")
            i += 6
        elif nxt == "U":
            out += chr(int(body[i + 2 : i + 10], 16)).encode("utf-8")
            i += 10
        else:
            raise TextProtoError(f"unknown escape `\\{nxt}`")
    return bytes(out)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TextProtoError(f"unexpected character `{text[pos]}` at offset {pos}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append((kind, m.group()))
    return tokens


def _number(text: str) -> int | float:
    text = text.rstrip("uUfF") if not text.lower().startswith(("0x", "-0x")) else text
    if re.fullmatch(r"-?0x[0-9a-fA-F]+", text, re.IGNORECASE):
        return int(text, 16)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise TextProtoError("unexpected end of input")
        self.pos += 1
        return token

    def message(self, closing: str | None) -> Message:
        fields: Message = {}
        while True:
            token = self.peek()
            if token is None:
                if closing is not None:
                    raise TextProtoError(f"missing `{closing}`")
                return fields
            if token == ("punct", closing):
                self.pos += 1
                return fields
            if token[0] == "punct" and token[1] in ",;":
                self.pos += 1
                continue
            kind, name = self.take()
            if kind not in ("ident", "bracket"):
                raise TextProtoError(f"expected a field name, got `{name}`")
            nxt = self.peek()
            if nxt == ("punct", ":"):
                self.pos += 1
                nxt = self.peek()
            if nxt is not None and nxt[0] == "punct" and nxt[1] in "{<":
                self.pos += 1
                value: Scalar | Message = self.message("}" if nxt[1] == "{" else ">")
                fields.setdefault(name, []).append(value)
            elif nxt == ("punct", "["):
                self.pos += 1
                while self.peek() != ("punct", "]"):
                    if self.peek() == ("punct", ","):
                        self.pos += 1
                        continue
                    fields.setdefault(name, []).append(self.scalar_or_message())
                self.pos += 1
            else:
                fields.setdefault(name, []).append(self.scalar_or_message())

    def scalar_or_message(self) -> Scalar | Message:
        kind, text = self.take()
        if kind == "punct" and text in "{<":
            return self.message("}" if text == "{" else ">")
        if kind == "string":
            data = _unescape(text[1:-1])
            # Adjacent string literals concatenate, as in C.
            while (nxt := self.peek()) is not None and nxt[0] == "string":
                self.pos += 1
                data += _unescape(nxt[1][1:-1])
            return data
        if kind == "number":
            return _number(text)
        if kind == "ident":
            lowered = text.lower()
            if lowered in ("inf", "infinity"):
                return float("inf")
            if lowered in ("-inf", "-infinity"):
                return float("-inf")
            if lowered == "nan":
                return float("nan")
            return text
        raise TextProtoError(f"unexpected `{text}`")


def parse(text: str) -> Message:
    """Parse a whole text-format document into a :data:`Message`."""
    return _Reader(text).message(None)
