"""Bounds on what one caller can make the service do: body size and time, images, concurrency.

Every limit answers with a 4xx :class:`HTTPProblem` naming the limit, before the work it
protects: the body is refused on its ``Content-Length`` before a byte is read (or as soon as a
chunked body passes the limit), an image on its header's width × height before any pixel is
decoded, a key's extra request before it reaches the gate.
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import numpy as np
from starlette.requests import ClientDisconnect

from ._runtime import Limits

#: Encoded image formats the service decodes; anything else is 415.
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


class HTTPProblem(Exception):
    """A client error: becomes an ``application/problem+json`` response (RFC 9457)."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


async def read_body(request: Any, limits: Limits, *, cap: int | None = None) -> bytes:
    """The whole body, refusing one over ``cap`` (413) or slower than the body timeout (408)."""
    cap = limits.max_body_bytes if cap is None else cap
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPProblem(400, "Bad Content-Length", f"`Content-Length: {declared[:40]}` is not a number")
        if int(declared) > cap:
            raise HTTPProblem(413, "Body too large", f"the body is {declared} bytes; the limit is {cap}", limit=cap)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    # The ASGI messages read directly, as Starlette's ``Request.stream`` reads them -- without an
    # async generator per request (its creation, finalizer hook and closing cost as much as the rest).
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):  # a timer, not a task per request as wait_for
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    request._is_disconnected = True
                    raise ClientDisconnect()
                if message["type"] != "http.request":
                    continue
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > cap:
                    raise HTTPProblem(413, "Body too large", f"the body exceeds the limit of {cap} bytes", limit=cap)
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise HTTPProblem(408, "Body too slow", f"the body did not arrive within {limits.body_timeout_seconds:g} s") from None
    request._stream_consumed = True
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    request._body = body  # Starlette's form parser reads the cached body instead of the consumed stream
    return body


_ORIENTATION = 0x0112  # the EXIF orientation tag (1: upright)


def decode_image(data: bytes, limits: Limits, *, field: str = "image") -> np.ndarray:
    """Decode an encoded JPEG/PNG/WebP into an RGB ``uint8`` array, checking size before pixels."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) > limits.max_image_bytes:
        raise HTTPProblem(413, "Image too large", f"`{field}` is {len(data)} bytes; the limit is {limits.max_image_bytes}",
                          limit=limits.max_image_bytes)
    if not data:
        raise HTTPProblem(422, "Empty image", f"`{field}` is empty")
    try:
        with Image.open(io.BytesIO(data), formats=tuple(IMAGE_TYPES.values())) as im:
            width, height = im.size  # from the header: nothing decoded yet
            if width * height > limits.max_pixels:
                raise HTTPProblem(413, "Image too large", f"`{field}` is {width}×{height} = {width * height} pixels; "
                                  f"the limit is {limits.max_pixels}", limit=limits.max_pixels)
            if min(width, height) < 8:
                raise HTTPProblem(422, "Image too small", f"`{field}` is {width}×{height}; at least 8×8 is needed")
            # Phone photos upright, as the person was captured.  Only an image with an orientation
            # to apply is transposed, and only one not in RGB converted: each of those steps copies
            # every pixel (three copies of an upright RGB photo became one, a third of its decode time).
            upright = ImageOps.exif_transpose(im) if im.getexif().get(_ORIENTATION, 1) != 1 else im
            rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8)
    except HTTPProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise HTTPProblem(413, "Image too large", f"`{field}`: {exc}", limit=limits.max_pixels) from None
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError... for corrupt data
        why = "format not recognised" if isinstance(exc, UnidentifiedImageError) else f"{type(exc).__name__}: {str(exc)[:120]}"
        raise HTTPProblem(422, "Undecodable image", f"`{field}` is not a decodable JPEG, PNG or WebP image ({why})") from None


class KeyConcurrency:
    """At most ``limit`` requests in flight per principal; the next one is refused with 429."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}

    def acquire(self, who: str, limit: int) -> None:
        with self._lock:
            n = self._inflight.get(who, 0)
            if n >= limit:
                raise HTTPProblem(429, "Too many concurrent requests",
                                  f"`{who}` already has {n} requests in flight; the limit is {limit}", limit=limit)
            self._inflight[who] = n + 1

    def release(self, who: str) -> None:
        with self._lock:
            n = self._inflight.get(who, 1) - 1
            if n <= 0:
                self._inflight.pop(who, None)
            else:
                self._inflight[who] = n

    def total(self) -> int:
        with self._lock:
            return sum(self._inflight.values())
