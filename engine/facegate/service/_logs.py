"""Service logging: the standard ``logging`` module, plain or JSON lines, every line with its request id.

What is logged is fixed here, not by callers: method, path, status, duration, key id, decision
id, effect, reason, pack revision.  Never a request body, an image, a subject id, a score or
anything a recognizer returned -- the audit log holds the masked facts, logs hold none.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

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
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={record.__dict__[k]}" for k in FIELDS if k in record.__dict__)
        return f"{self.formatTime(record)} {record.levelname} [{getattr(record, 'request_id', '-')}] {record.getMessage()} {extra}".rstrip()


def access(method: str, path: str, status: int, seconds: float, key: str | None) -> None:
    """The access-log line of one request (``log.info`` without looking up the caller's frame: it is always this one)."""
    if log.isEnabledFor(logging.INFO):
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status), None,
                                  extra={"method": method, "path": path, "status": status, "ms": round(seconds * 1000, 2), "key": key}))


def configure(json_lines: bool, level: int = logging.INFO) -> None:
    """Send ``facegate.*`` and uvicorn's error log to stderr, plain or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONLines() if json_lines else _Plain())
    handler.addFilter(_RequestId())
    for name in ("facegate", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
