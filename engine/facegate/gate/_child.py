"""A recognizer worker process: ``python -m facegate.gate._child READ_FD WRITE_FD``.

It holds one recognizer and nothing of the gate's: no store, audit log, key, registry or gate
object, and an environment stripped by the gate.  Order: confine (first filter), import and
build the plugin, confine (second filter), say ready, then serve requests until the pipe closes.
The images arrive in the worker's shared-memory arena (:mod:`._arena`: opened read-only when the
gate names a new one, then unlinked by the gate); per request it is mapped read-only, handed to
the recognizer, unmapped (a mapping the plugin still holds is reported as kept), and the answer
goes back as plain JSON (:mod:`._harness`).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import sys
import time
from typing import Any

_HEADER = struct.Struct("<II")  # JSON length, then the length of the raw bytes that follow it
_WRITE_BITS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED = ("socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "subprocess.", "os.system",
            "os.exec", "os.posix_spawn", "os.fork", "os.spawn", "os.kill", "shutil.", "os.rename", "os.remove", "os.truncate",
            "os.link", "os.symlink", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime", "sqlite3.connect")
violations: list[str] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    """Python-level attempts are recorded (the filters refuse them in any case, and catch native code too)."""
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_BITS):
            violations.append(f"tried to open `{str(path)[:80]}` for writing")
    elif event.startswith(_BLOCKED):
        violations.append(f"tried `{event}`")


def send(fd: int, message: dict[str, Any]) -> None:
    raw = _raw_out(message)
    data = json.dumps(message, separators=(",", ":")).encode()
    view = memoryview(_HEADER.pack(len(data), len(raw)) + data + raw)
    while view:
        view = view[os.write(fd, view):]


def _raw_out(message: dict[str, Any]) -> bytes:
    """Embedding bytes travel after the JSON; in it each becomes its span ``[offset, length]``."""
    parts: list[bytes] = []
    offset = 0
    for entry in message.get("images") or ():
        vector = entry.get("embedding") if isinstance(entry, dict) else None
        if isinstance(vector, dict) and isinstance(vector.get("f32"), bytes):
            parts.append(vector["f32"])
            vector["f32"] = [offset, len(parts[-1])]
            offset += len(parts[-1])
    return b"".join(parts)


def receive(fd: int) -> dict[str, Any] | None:
    head = _read_exactly(fd, _HEADER.size)
    if head is None:
        return None
    size, raw = _HEADER.unpack(head)
    body = _read_exactly(fd, size + raw)  # the gate sends no raw bytes
    return None if body is None else json.loads(body[:size])


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _resolve(reference: str) -> Any:
    import importlib

    module, _, qualname = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _serve(rfd: int, wfd: int, recognizer: Any, confine: Any) -> None:
    import numpy as np

    from . import _harness

    arena = -1
    while True:
        request = receive(rfd)
        if request is None:
            return
        started = time.perf_counter()
        if confine is not None:
            confine.arm_cpu(float(request["cpu"]))
        if "arena" in request:  # a new arena (the first, or a larger one): the old one is zeroed and dropped
            if arena >= 0:
                os.close(arena)
            arena = os.open(request["arena"], os.O_RDONLY)
        mapping = mmap.mmap(arena, int(request["size"]), mmap.MAP_SHARED, mmap.PROT_READ)
        images = [np.frombuffer(mapping, np.uint8, h * w * 3, offset).reshape(h, w, 3) for offset, h, w in request["images"]]
        earlier = violations[:]  # attempts made between calls (a thread, a finalizer): this request fails for them
        del violations[:]
        answer: dict[str, Any]
        if earlier:
            answer = {"images": [], "error": {"code": "sandbox_violation", "stage": "between calls", "message": "; ".join(earlier)[:2000]}}
        else:
            answer = _harness.run(recognizer, request["op"], list(request["wanted"]), images, violations)
            if violations and answer.get("error") is None:  # after the last call returned (e.g. a finalizer)
                answer = {"images": [], "error": {"code": "sandbox_violation", "stage": "after the call", "message": "; ".join(violations)[:2000]}}
            del violations[:]
        del images
        try:
            mapping.close()
            answer["kept"] = False
        except BufferError:  # the recognizer still holds a view of the image
            answer["kept"] = True
        del mapping
        answer["served"] = time.perf_counter() - started  # seconds from request to answer (benchmarks read it; the gate does not)
        send(wfd, answer)


def main(argv: list[str]) -> int:
    rfd, wfd = int(argv[1]), int(argv[2])
    hello = receive(rfd)
    if hello is None:
        return 2
    sys.path[:] = list(hello["sys_path"])
    sys.dont_write_bytecode = True
    confine = None
    try:
        if hello["confine"]:
            from . import _confine

            confine = _confine
            confine.load_stage(confine.Limits(int(hello["memory_mb"]), float(hello["cpu_seconds"])))
        sys.addaudithook(_hook)
        factory = _resolve(hello["factory"])
        recognizer = factory(hello["config"])
        del violations[:]  # loading a model may write its cache: only calls on images count
        if confine is not None:
            confine.image_stage()
    except BaseException as exc:  # reported to the gate, which refuses to start
        exc.__traceback__ = None
        send(wfd, {"ready": False, "type": type(exc).__name__[:64], "message": str(exc)[:2000]})
        return 1
    send(wfd, {"ready": True})
    _serve(rfd, wfd, recognizer, confine)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
