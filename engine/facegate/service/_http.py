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

The connection's writes are coalesced (:class:`CoalescingTransport`): uvicorn writes a response's
head and its body separately, two system calls -- and on loopback two wake-ups of the client --
for one small answer.  Writes made in one step of the event loop now leave as one, at the end of
that step (or before a close); their order and content are unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The same bound as h11's ``h11_max_incomplete_event_size`` in ``_server``.
MAX_HEAD_BYTES = 64 * 1024

_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 38\r\nconnection: close\r\n\r\nrequest line and headers exceed 64 KiB")


class CoalescingTransport:
    """A transport whose writes made in one step of the event loop go out as one write.

    The first write of a step schedules the flush (``call_soon``: after the code that wrote, in
    the same loop iteration); later writes of the step join it.  ``close``, ``write_eof`` and
    ``get_write_buffer_size`` see the held bytes as written; ``abort`` drops them, as the
    transport's own buffer would be.  Everything else is the wrapped transport's.
    """

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending:
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending or ()))

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, set_protocol, ...
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over ``MAX_HEAD_BYTES`` with 431."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control pauses and resumes reading on the transport itself
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]

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
