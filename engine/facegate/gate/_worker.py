"""Where recognizer code runs: a pool of confined worker processes, or (opt-in) this process.

A :class:`Pool` starts ``size`` workers (:mod:`._child`) for one recognizer.  Per request the
images go into the serving worker's shared-memory arena (:mod:`._arena`: unlinked from
``/dev/shm`` once the worker has opened it), are mapped read-only by the worker for that request,
and are zeroed by the gate afterwards whatever happened.  The answer comes back as
length-prefixed JSON (never pickle: the gate unpickles nothing a plugin wrote) followed by the
embeddings as raw float32 bytes, at most ``MAX_REPLY`` bytes in all.  A worker that overruns
its timeout, dies, or keeps a view of an image is killed and a fresh one takes its place.  Pools
are shared by gates with the same recognizer, configuration and limits (a reloaded gate reuses
warm workers) and closed with the last gate.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _arena, _confine, _harness
from ._arena import Arena
from ._confine import Confinement, Limits

MAX_REPLY = 8 * 1024 * 1024
STARTUP_TIMEOUT = 300.0
_HEADER = struct.Struct("<II")  # JSON length, then the length of the raw bytes that follow it
_ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "TZ", "HOME", "TMPDIR", "XDG_CACHE_HOME", "SYSTEMROOT")
_ENV_PREFIXES = ("LC_", "OPENBLAS_", "OMP_", "MKL_", "FACEGATE_MODEL")


class WorkerError(Exception):
    """A worker could not start, died, overran, or answered out of contract; ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Spec:
    """Everything a worker is built from; pools are shared per spec."""

    factory: str  # "module:qualname"
    config: str  # canonical JSON
    limits: Limits
    confine: bool
    size: int


def factory_reference(factory: Callable[..., Any]) -> str:
    """``module:qualname`` of a factory a worker can import, or raise ``ValueError`` saying why not."""
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ValueError(f"factory `{qualname or factory!r}` is not importable by name (define it at module level)")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not factory:
        raise ValueError(f"factory `{module}:{qualname}` does not name the same object when imported")
    return f"{module}:{qualname}"


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith(_ENV_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Worker:
    """One worker process and its two pipes."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "facegate.gate._child", str(to_child_r), str(from_child_w)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(to_child_r, from_child_w), env=_child_env(), start_new_session=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._child_fds = frozenset({0, 1, 2, to_child_r, from_child_w})
        self.alive = True
        self.arena: Arena | None = None  # where this worker's next request's images go
        self._opened: Arena | None = None  # the arena the worker process holds open
        hello = {"sys_path": [p for p in sys.path if isinstance(p, str)], "factory": spec.factory, "config": json.loads(spec.config),
                 "confine": spec.confine, "memory_mb": spec.limits.memory_mb, "cpu_seconds": spec.limits.cpu_seconds}
        try:
            self._send(hello)
            ready = self._receive(time.monotonic() + STARTUP_TIMEOUT)
        except WorkerError as exc:
            self.kill()
            raise WorkerError("worker_start", f"the worker did not start: {exc}") from None
        if not isinstance(ready, dict) or ready.get("ready") is not True:
            self.kill()
            detail = f"{str(ready.get('type', ''))[:64]}: {str(ready.get('message', ''))[:400]}" if isinstance(ready, dict) else "no answer"
            raise WorkerError("worker_start", f"failed to start: {detail}")
        if spec.confine:
            self.confinement = _confine.inspect(self.proc.pid, self._child_fds, spec.limits.cpu_seconds)
        else:
            self.confinement = Confinement("process", problems=("confinement switched off",))

    def load(self, images: list[np.ndarray]) -> dict[str, Any]:
        """Copy ``images`` into this worker's arena (a new one if it has none this large); return the request fields naming them."""
        needed = sum(i.shape[0] * i.shape[1] * 3 for i in images)
        if self.arena is None or self.arena.size < needed:
            self._drop_arena()
            try:
                self.arena = Arena(needed)
            except OSError as exc:
                raise WorkerError("shared_memory", f"no shared memory for {needed} bytes of images ({exc.strerror})") from None
        fields = {"images": self.arena.load(images), "size": max(self.arena.used, 1)}
        if self.arena is not self._opened:  # the worker opens it (and drops the one it had) before this request
            fields["arena"] = self.arena.path
        return fields

    def wipe(self) -> None:
        """Zero what the last request put in the arena; drop an arena the worker never opened, or one too large to keep."""
        if self.arena is not None:
            self.arena.wipe()
            if self.arena is not self._opened or self.arena.size > _arena.KEEP:
                self._drop_arena()

    def _drop_arena(self) -> None:
        if self.arena is not None:
            self.arena.close()
        self.arena = self._opened = None

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            self._send(request)
            answer = self._receive(time.monotonic() + timeout)
        except WorkerError:
            self.kill()
            raise
        if "arena" in request and self.arena is not None:  # the worker has it open now: its name can go
            self._opened = self.arena
            self.arena.unlink()
        if not isinstance(answer, dict):
            self.kill()
            raise WorkerError("recognizer_malformed", "the worker's answer is not an object")
        return answer

    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        view = memoryview(_HEADER.pack(len(data), 0) + data)
        try:
            while view:
                view = view[os.write(self._to_child, view):]
        except OSError as exc:
            raise WorkerError("worker_died", self._death(f"pipe closed ({exc.strerror})")) from None

    def _receive(self, deadline: float) -> Any:
        head = self._read(_HEADER.size, deadline)
        size, raw = _HEADER.unpack(head)
        if size + raw > MAX_REPLY:
            raise WorkerError("recognizer_malformed", f"the worker's answer is {size + raw} bytes (at most {MAX_REPLY})")
        body = self._read(size + raw, deadline)
        try:
            answer = json.loads(body[:size])
        except ValueError:
            raise WorkerError("recognizer_malformed", "the worker's answer is not JSON") from None
        _raw_in(answer, memoryview(body)[size:])
        return answer

    def _read(self, n: int, deadline: float) -> bytes:
        chunks, left = [], n
        poller = select.poll()
        poller.register(self._from_child, select.POLLIN)
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0 or not poller.poll(wait * 1000):
                raise WorkerError("recognizer_timeout", "timed out")
            chunk = os.read(self._from_child, min(left, 1 << 20))
            if not chunk:
                raise WorkerError("worker_died", self._death("the worker closed its pipe"))
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _death(self, default: str) -> str:
        try:
            code = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return default
        if code < 0:
            name = signal.Signals(-code).name
            why = {"SIGXCPU": "its CPU limit per call", "SIGKILL": "a kill (memory or timeout)", "SIGSYS": "a refused system call"}
            return f"the worker was ended by {name} ({why.get(name, 'a signal')})"
        return f"the worker exited with status {code}"

    def kill(self) -> None:
        if not self.alive:
            return
        self.alive = False
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            pass
        self._drop_arena()


class Staged:
    """One request's hold on a worker of a :class:`Pool`: its images sit in the worker's arena until :meth:`end`."""

    def __init__(self, pool: Pool, worker: Worker) -> None:
        self._pool = pool
        self._worker = worker
        self._healthy = False  # a worker given back without a clean answer is replaced
        self._ended = False
        self._fields: dict[str, Any] = {}

    def load(self, images: list[np.ndarray]) -> Staged:
        """Copy ``images`` into the worker's arena (on failure the worker goes back, and the error is raised)."""
        try:
            self._fields = self._worker.load(images)
        except BaseException:
            self._healthy = True  # it has seen nothing
            self.end()
            raise
        return self

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``request`` with the staged images; the worker's answer (plain data)."""
        answer = self._worker.call({**request, **self._fields, "cpu": self._pool.spec.limits.cpu_seconds}, timeout)
        error = answer.get("error")
        # A worker that kept an image or tried a refused call is replaced: it carries nothing on.
        self._healthy = answer.get("kept") is False and not (isinstance(error, dict) and error.get("code") == "sandbox_violation")
        return answer

    def end(self, discard: bool = False) -> None:
        """Zero the arena and give the worker back (``discard``: replace it whatever it answered)."""
        if self._ended:
            return
        self._ended = True
        try:
            self._worker.wipe()
        finally:
            self._pool._release(self._worker, self._healthy and not discard)


def _raw_in(answer: Any, raw: memoryview) -> None:
    """Put each embedding's bytes back in place of its span; a span that is not one becomes ``None`` (refused later)."""
    images = answer.get("images") if isinstance(answer, dict) else None
    for entry in images if isinstance(images, list) else ():
        vector = entry.get("embedding") if isinstance(entry, dict) else None
        if isinstance(vector, dict) and "f32" in vector:
            span = vector["f32"]
            ok = isinstance(span, list) and len(span) == 2 and all(type(v) is int and v >= 0 for v in span)
            vector["f32"] = bytes(raw[span[0] : span[0] + span[1]]) if ok and span[0] + span[1] <= len(raw) else None


class Pool:
    """``spec.size`` workers for one recognizer; a request borrows one for its whole hand-off."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._idle: list[Worker] = []
        self._starting = 0
        self._cv = threading.Condition()
        self.users = 0
        self.closed = False
        first = Worker(spec)  # a plugin that cannot start is refused now, not at the first request
        self.confinement = first.confinement
        self._idle.append(first)
        self._total = 1

    def stage(self, images: list[np.ndarray]) -> Staged:
        """Take a worker (waiting for one if all are busy) and put ``images`` in its arena; the request goes with :meth:`Staged.run`."""
        return Staged(self, self._acquire()).load(images)

    def take_idle(self) -> Staged | None:
        """An idle worker, for :meth:`Staged.load`; ``None`` if all are busy (nothing waits here)."""
        with self._cv:
            if self.closed or not self._idle:
                return None
            return Staged(self, self._idle.pop())

    def run(self, request: dict[str, Any], images: list[np.ndarray], timeout: float) -> dict[str, Any]:
        """Hand ``images`` and ``request`` to a worker; its arena is zeroed after, whatever happened."""
        staged = self.stage(images)
        try:
            return staged.run(request, timeout)
        finally:
            staged.end()

    def _acquire(self) -> Worker:
        with self._cv:
            while True:
                if self.closed:
                    raise WorkerError("worker_start", "the gate is closed")
                if self._idle:
                    return self._idle.pop()
                if self._total < self.spec.size:
                    self._total += 1
                    break
                self._cv.wait()
        try:
            return Worker(self.spec)
        except BaseException:
            with self._cv:
                self._total -= 1
                self._cv.notify()
            raise

    def _release(self, worker: Worker, healthy: bool) -> None:
        if not healthy:
            worker.kill()  # overran, died, kept an image or tried a refused call: replaced at once, below
        with self._cv:
            if healthy and not self.closed:
                self._idle.append(worker)
            else:
                self._total -= 1
                if healthy:
                    worker.kill()
            self._cv.notify()
        if not healthy and not self.closed:
            threading.Thread(target=self._refill, name="facegate-worker-start", daemon=True).start()

    def _refill(self) -> None:
        """Start a replacement worker off the request path (a failure leaves it to the next request)."""
        with self._cv:
            if self.closed or self._total >= self.spec.size:
                return
            self._total += 1
        try:
            worker = Worker(self.spec)
        except WorkerError:
            with self._cv:
                self._total -= 1
                self._cv.notify()
            return
        with self._cv:
            if not self.closed:
                self._idle.append(worker)
                self._cv.notify()
                return
            self._total -= 1
        worker.kill()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            idle, self._idle = self._idle, []
            self._cv.notify_all()
        for worker in idle:
            worker.kill()

    def pids(self) -> list[int]:
        with self._cv:
            return [w.proc.pid for w in self._idle]


# -- pools shared by gates with the same spec -------------------------------------------------------

_pools: dict[Spec, Pool] = {}
_spare: list[Spec] = []  # pools no gate uses any more, newest last, kept warm for a while
SPARE_POOLS = 4
_lock = threading.Lock()


def pool_for(spec: Spec) -> Pool:
    """The pool for ``spec`` (started if needed); pair with :func:`release`."""
    with _lock:
        pool = _pools.get(spec)
        if pool is not None and not pool.closed:
            if spec in _spare:
                _spare.remove(spec)
            pool.users += 1
            return pool
    pool = Pool(spec)
    with _lock:
        existing = _pools.get(spec)
        if existing is not None and not existing.closed:  # another thread won the race
            pool.close()
            pool = existing
        _pools[spec] = pool
        if spec in _spare:
            _spare.remove(spec)
        pool.users += 1
    return pool


def release(pool: Pool) -> None:
    """A gate is done with ``pool``; unused pools stay warm up to ``SPARE_POOLS``, then close."""
    closing: list[Pool] = []
    with _lock:
        pool.users -= 1
        if pool.users > 0 or pool.closed:
            return
        _spare.append(pool.spec)
        while len(_spare) > SPARE_POOLS:
            closing.append(_pools.pop(_spare.pop(0)))
    for p in closing:
        p.close()


@atexit.register
def _close_all() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
        _spare.clear()
    for pool in pools:
        pool.close()


# -- what this machine enforces, for `facegate plugins` -------------------------------------------------


class Probe:
    """A recognizer with no model: started in a worker only to see which confinement the kernel grants."""

    def __init__(self, config: Any) -> None:
        pass

    def detect(self, image: np.ndarray) -> list[Any]:
        return []

    def embed(self, image: np.ndarray, face: Any) -> np.ndarray:
        return np.zeros(1, np.float32)


def probe(isolation: str, limits: Limits | None = None) -> Confinement:
    """The confinement a recognizer would get here under ``isolation`` (starts and stops one probe worker)."""
    if isolation == "none":
        return _confine.IN_PROCESS
    try:
        worker = Worker(Spec(f"{__name__}:Probe", "{}", limits or Limits(), True, 1))
    except WorkerError as exc:
        return Confinement("process", problems=(f"no worker could start: {exc}",))
    worker.kill()
    return worker.confinement


# -- in process (isolation: none) ---------------------------------------------------------------------


class InProcess:
    """``isolation: none``: the recognizer runs in this process on a guarded thread (trusted code only)."""

    confinement = _confine.IN_PROCESS

    def __init__(self, recognizer: Any) -> None:
        self.recognizer = recognizer

    def stage(self, images: list[np.ndarray]) -> _InProcessStaged:
        return _InProcessStaged(self, images)

    def run(self, request: dict[str, Any], images: list[np.ndarray], timeout: float) -> dict[str, Any]:
        from .. import _sandbox

        copies = [_private_copy(i) for i in images]
        call = _sandbox.guarded_call(self._work, (request, copies), timeout)
        if call.timed_out:
            for c in copies:
                _wipe(c)
            raise WorkerError("recognizer_timeout", "timed out")
        if call.error is not None:
            raise WorkerError("recognizer_failed", f"{type(call.error).__name__}: {call.error}")
        answer: dict[str, Any] = call.value
        return answer

    def _work(self, request: dict[str, Any], copies: list[np.ndarray]) -> dict[str, Any]:
        from .. import _sandbox

        violations = _sandbox.current_violations()
        answer = _harness.run(self.recognizer, request["op"], list(request["wanted"]), copies, violations)
        answer["kept"] = any(sys.getrefcount(c) > 3 for c in copies)  # the list, `c`, getrefcount's argument
        for c in copies:
            _wipe(c)
        return answer


class _InProcessStaged:
    """The in-process runner's side of :class:`Staged`: the private copies are made and wiped inside ``run``."""

    def __init__(self, runner: InProcess, images: list[np.ndarray]) -> None:
        self._runner, self._images = runner, images

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self._runner.run(request, self._images, timeout)

    def end(self, discard: bool = False) -> None:
        self._images = []


def _private_copy(image: np.ndarray) -> np.ndarray:
    buffer = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else np.array(image[:, :, :3], copy=True, order="C")
    buffer.flags.writeable = False
    return buffer


def _wipe(buffer: np.ndarray) -> None:
    buffer.flags.writeable = True
    buffer.fill(0)
