"""HTTP/1.1 parsing: uvicorn's httptools protocol (llhttp, C) with the request-head bound h11 has.

llhttp bounds nothing by itself: a client could send an endless header line and the parser would
buffer it.  Here the bytes received while a request's head (request line and headers) is
incomplete are counted; past ``MAX_HEAD_BYTES`` the request is answered 431 and the connection
closed.  The count restarts when a head completes, so bodies are bounded only by the service's
body limit.  The check follows each socket read (a read that completes the head is fine however
much body it carries), so the parser may hold one read -- at most 256 KiB with uvloop -- beyond
the bound before the connection is closed; bytes of a pipelined request's head that arrive in the
same read as the end of the previous request are not counted.  h11 (``--http h11``) enforces the same bound in pure Python,
at roughly a hundred microseconds more per request.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The same bound as h11's ``h11_max_incomplete_event_size`` in ``_server``.
MAX_HEAD_BYTES = 64 * 1024

_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 38\r\nconnection: close\r\n\r\nrequest line and headers exceed 64 KiB")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over ``MAX_HEAD_BYTES`` with 431."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a read that completes the head (and carries body bytes) is fine.
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # the next bytes on this connection start the next request's head
        super().on_message_complete()
