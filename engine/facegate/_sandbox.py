"""Enforce phase helpers: run recognizer code under a timeout and a write/network guard.

A process-wide audit hook (PEP 578) refuses file writes, sockets and subprocesses *in the
thread that runs a recognizer call*.  It sees Python-level operations only: native code that
writes through its own C calls is outside its reach (documented in docs/vendors.md).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Any, Callable

_state = threading.local()
_installed = False
_install_lock = threading.Lock()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED_EVENTS = ("socket.connect", "socket.bind", "socket.sendto", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.fork", "shutil.copyfile", "os.rename", "os.link", "os.symlink")


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not getattr(_state, "guarded", False):
        return
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing:
            _state.violations.append(f"tried to open `{path}` for writing")
            raise PermissionError(f"facegate: recognizers may not write files (`{path}`)")
    elif event.startswith(_BLOCKED_EVENTS):
        _state.violations.append(f"tried `{event}`")
        raise PermissionError(f"facegate: recognizers may not use `{event}`")


def install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


class CallResult:
    __slots__ = ("value", "error", "violations", "timed_out")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.violations: list[str] = []
        self.timed_out = False


class _Worker(threading.Thread):
    """A long-lived guarded thread for recognizer calls.

    Reusing threads matters: native runtimes keep per-thread state (ONNX Runtime's is ~1 ms
    to build), which a fresh thread per call would pay every time.
    """

    def __init__(self) -> None:
        super().__init__(name="facegate-recognizer", daemon=True)
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.start()

    def run(self) -> None:
        _state.guarded = True
        while True:
            task = self.inbox.get()
            if task is None:
                return
            fn, args, out, done = task
            del task
            _state.violations = out.violations
            try:
                out.value = fn(*args)
            except BaseException as exc:  # a recognizer's failure is data, not a crash
                exc.__traceback__ = None  # its frames would keep the image alive
                out.error = exc
            finally:
                del fn, args  # hold no image between calls
                done.set()


_idle: list[_Worker] = []
_idle_lock = threading.Lock()
MAX_IDLE = 8


def guarded_call(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> CallResult:
    """Run ``fn(*args)`` on a guarded worker thread; wait at most ``timeout`` seconds.

    A call that does not finish in time is abandoned with its worker (Python cannot kill a
    thread): its result is never read, the worker is never reused, and the caller must treat
    any buffer it was given as lost to it.
    """
    install()
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
    out = CallResult()
    done = threading.Event()
    worker.inbox.put((fn, args, out, done))
    del args
    if not done.wait(timeout):
        out.timed_out = True
        return out
    with _idle_lock:
        if len(_idle) < MAX_IDLE:
            _idle.append(worker)
            worker = None
    if worker is not None:
        worker.inbox.put(None)
    return out
