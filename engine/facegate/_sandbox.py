"""``isolation: none`` only: run trusted recognizer code in-process under a timeout and a write/network guard.

A process-wide audit hook (PEP 578) refuses file writes, sockets and subprocesses *in the
thread that runs a recognizer call*.  It sees Python-level operations only, and nothing a
plugin does on another thread or after the call: this is a seat belt for trusted first-party
code, not containment.  Untrusted recognizers run in confined worker processes
(:mod:`facegate.gate._worker`), which is the default.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

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


def current_violations() -> list[str]:
    """The refusals recorded on this guarded worker thread for the task it runs."""
    found: list[str] = _state.violations
    return found


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


def _cleared(exc: BaseException) -> BaseException:
    """``exc`` without its traceback: the frames would keep the recognizer's arguments (the image) alive."""
    exc.__traceback__ = None
    return exc


class _Call:
    """``fn(*args)`` as one task for a worker."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn: Callable[..., Any] | None = fn
        self.args: tuple[Any, ...] | None = args
        self.out = CallResult()
        self.done = threading.Event()

    def run(self) -> None:
        fn, args = self.fn, self.args
        self.fn = self.args = None  # hold no image after the call
        try:
            assert fn is not None and args is not None
            self.out.value = fn(*args)
        except BaseException as exc:  # a recognizer's failure is data, not a crash
            self.out.error = _cleared(exc)
        finally:
            del fn, args
            self.done.set()


class _Worker(threading.Thread):
    """A long-lived guarded thread for recognizer calls.

    Reusing threads matters: native runtimes keep per-thread state (ONNX Runtime's is ~1 ms
    to build), which a fresh thread per call would pay every time.  A worker goes back to the
    idle pool when its task has finished; one stuck in a call that overran its timeout never does.
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
            _state.violations = task.out.violations
            task.run()  # never raises
            del task
            with _idle_cv:
                if len(_idle) >= MAX_IDLE:
                    _idle_cv.notify()
                    return
                _idle.append(self)
                _idle_cv.notify()


_idle: list[_Worker] = []
_idle_cv = threading.Condition(threading.Lock())
MAX_IDLE = 8


def _submit(task: Any) -> None:
    install()
    with _idle_cv:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
    worker.inbox.put(task)


def guarded_call(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> CallResult:
    """Run ``fn(*args)`` on a guarded worker thread; wait at most ``timeout`` seconds.

    A call that does not finish in time is abandoned: its result is never read, and the caller
    must treat any buffer it was given as lost to it.
    """
    task = _Call(fn, args)
    del args
    _submit(task)
    if not task.done.wait(timeout):
        task.out.timed_out = True
    return task.out
