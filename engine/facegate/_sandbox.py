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


class Job:
    """One request's recognizer work on one guarded worker thread, overlapped with deciding.

    The worker runs ``stage()`` at once (gate code: the private image copies) while the caller
    decides and writes the decision record; then it waits.  :meth:`release` hands it the approved
    ``work(staged)``; :meth:`cancel` hands it nothing, and ``discard(staged)`` runs instead (a job
    cancelled before its worker picked it up stages nothing).  No recognizer code runs before
    :meth:`release`.  :meth:`wait` waits for the result at most
    ``timeout`` seconds from the release; a job that overruns is abandoned with its worker.
    """

    def __init__(self, stage: Callable[[], list[Any]], discard: Callable[[list[Any]], None]) -> None:
        self.out = CallResult()
        self.staged: list[Any] | None = None
        self._stage: Callable[[], list[Any]] | None = stage
        self._discard = discard
        self._work: Callable[[list[Any]], Any] | None = None
        self._go = threading.Event()
        self._published = threading.Event()
        self.finishing = False
        _submit(self)

    def run(self) -> None:  # on the worker
        stage, self._stage = self._stage, None
        if not (self._go.is_set() and self._work is None):  # cancelled before we got here: stage nothing
            try:
                assert stage is not None
                self.staged = stage()
            except BaseException as exc:
                self.out.error = _cleared(exc)
        del stage
        self._go.wait()
        work, self._work = self._work, None
        try:
            if work is not None and self.out.error is None and self.staged is not None:
                try:
                    self.out.value = work(self.staged)
                except BaseException as exc:
                    self.out.error = _cleared(exc)
        finally:
            del work
            staged, self.staged = self.staged, None
            # The result goes out first; discarding (wiping) the staged values follows on this
            # thread, and callers wanting a worker meanwhile wait for this one (see _submit).
            global _finishing
            with _idle_cv:
                _finishing += 1  # the worker loop takes it back when this worker is idle again
                self.finishing = True
            self._published.set()
            try:
                if staged is not None:
                    self._discard(staged)
            finally:
                del staged

    def release(self, work: Callable[[list[Any]], Any]) -> None:
        """Run the approved ``work`` on the staged values (once; later calls are ignored)."""
        if not self._go.is_set():
            self._work = work
            self._go.set()

    def cancel(self) -> None:
        """Nothing was approved: the worker discards what it staged.  No-op after :meth:`release`."""
        self._go.set()

    def wait(self, timeout: float) -> CallResult:
        if not self._published.wait(timeout):
            self.out.timed_out = True
        return self.out


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
            finished = getattr(task, "finishing", False)
            del task
            global _finishing
            with _idle_cv:
                if finished:
                    _finishing -= 1
                if len(_idle) >= MAX_IDLE:
                    _idle_cv.notify()
                    return
                _idle.append(self)
                _idle_cv.notify()


_idle: list[_Worker] = []
_idle_cv = threading.Condition(threading.Lock())
_finishing = 0  # workers that have handed back a job's result and are discarding its staged values
MAX_IDLE = 8
FINISHING_WAIT = 0.005  # seconds a caller waits for a finishing worker before starting a new one


def _submit(task: Any) -> None:
    install()
    with _idle_cv:
        if not _idle and _finishing:
            # The worker that just ran a job is wiping its buffers: take it rather than start a
            # thread, whose first ONNX Runtime call would rebuild per-thread state (~1 ms).
            _idle_cv.wait_for(lambda: bool(_idle) or not _finishing, FINISHING_WAIT)
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
