"""Service logging: the standard ``logging`` module, plain or JSON lines, every line with its request id.

What is logged is fixed here, not by callers: method, path, status, duration, key id, decision
id, effect, reason, pack revision.  Never a request body, an image, a subject id, a score or
anything a recognizer returned -- the audit log holds the masked facts, logs hold none.

Lines are written in batches (:class:`BatchedStream`): a write per access line was a system call
per request, and with it a hand-over of the interpreter lock to the audit writer thread -- tens of
microseconds a request under load.  A warning or error is written at once, with the lines before
it; the rest at the latest ``FLUSH_SECONDS`` later (the service flushes on a timer and on shutdown).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("facegate_request_id", default="-")
log = logging.getLogger("facegate.service")

#: The only ``extra`` keys a service log line may carry.
FIELDS = ("method", "path", "status", "ms", "key", "decision_id", "effect", "reason", "revision", "event")


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JSONLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key in FIELDS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out, ensure_ascii=False)


class _Plain(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # the local time of the last second formatted

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        """``logging``'s default ``2026-12-03 12:00:00,123``, the date part formatted once a second."""
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created)))
        return f"{self._second[1]},{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={record.__dict__[k]}" for k in FIELDS if k in record.__dict__)
        return f"{self.formatTime(record)} {record.levelname} [{getattr(record, 'request_id', '-')}] {record.getMessage()} {extra}".rstrip()


#: The longest a line waits in :class:`BatchedStream` when the service's timer flushes it.
FLUSH_SECONDS = 0.25
#: Writes are cut at line ends to at most this many bytes: several workers share one stderr, and a
#: pipe keeps a write of up to ``PIPE_BUF`` (4096 on Linux) in one piece.
_CHUNK = 4096


class BatchedStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler writing lines in batches: at ``max_lines``, on :meth:`flush`, and at once
    for a record of level WARNING or above (with the lines before it, in order)."""

    def __init__(self, stream: TextIO, *, max_lines: int = 256) -> None:
        super().__init__(stream)
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._writing = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise into the caller
            self.handleError(record)
            return
        self._lines.append(line)  # ``handle`` holds the handler's lock
        if record.levelno >= logging.WARNING or len(self._lines) >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._lines = self._lines, []
        if not lines:
            return
        with self._writing:  # lines leave in the order they were taken
            try:
                chunk: list[str] = []
                size = 0
                for line in lines:
                    if chunk and size + len(line) + 1 > _CHUNK:
                        self._write("".join(chunk))
                        chunk, size = [], 0
                    chunk.append(line + "\n")
                    size += len(line) + 1
                self._write("".join(chunk))
            except Exception:  # noqa: BLE001 - a closed or full stream must not break the service
                pass

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def access(method: str, path: str, status: int, seconds: float, key: str | None) -> None:
    """The access-log line of one request (``log.info`` without looking up the caller's frame: it is always this one)."""
    if log.isEnabledFor(logging.INFO):
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status), None,
                                  extra={"method": method, "path": path, "status": status, "ms": round(seconds * 1000, 2), "key": key}))


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    """Send ``facegate.*`` and uvicorn's error log to stderr, plain or JSON lines."""
    # The service's formatters print no thread or process fields: each record would look them up (half its making).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchedStream(sys.stderr)
    handler.setFormatter(JSONLines() if json_lines else _Plain())
    handler.addFilter(_RequestId())
    for name in ("facegate", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def flush() -> None:
    """Write out the lines waiting in the service's batched handlers (the service's timer calls this)."""
    for handler in logging.getLogger("facegate").handlers:
        handler.flush()
