"""A permitted request's hand-off to the recognizer, prepared while the gate's records commit.

The two durable audit commits (the decision record before the recognizer runs, the outcome
record before the result is returned) are a request's longest waits outside the recognizer, and
the thread waiting in them holds no lock.  So with isolated workers the gate overlaps them:

- while the caller's thread commits the decision record, a helper thread copies the images into
  the arena of an idle worker; the worker is sent the request only once the commit has returned.
  If the commit fails, the arena is zeroed and that worker replaced (a plugin's thread could have
  read an image whose request ends denied; the worker carries nothing on).  When no worker is
  idle, nothing is staged: the caller waits for one after the commit, as without overlap;
- while the caller's thread commits the outcome record, a helper zeroes the arena and gives the
  worker back; ``process`` returns only when both are done.

Helpers never wait for a worker (only the caller's thread does), so a helper is never stuck
behind the requests it would release.  The checks that decide whether the recognizer is needed at
all (operation, capabilities, images) run first, on the caller's thread; a request they refuse
copies nothing.  In-process runners (``isolation: none``) stage nothing and use no helper.  Audit
logs are only ever called from the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ._contract import Refused

_helpers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="facegate-handoff")


class Prepared:
    """What a permitted request will hand the recognizer, checked, and for a worker pool staged meanwhile."""

    def __init__(self, op: str = "", wanted: frozenset[str] = frozenset(), images: list[np.ndarray] | None = None, *,
                 runner: Any = None, refused: Refused | None = None) -> None:
        self.op, self.wanted, self.images, self.refused = op, wanted, images or [], refused
        self._runner = runner
        self._staged: Any = None
        self._future: Future[Any] | None = None
        take_idle = getattr(runner, "take_idle", None)  # a worker pool (in-process runners stage at run())
        if take_idle is None or not self.images:
            return
        staged = take_idle()
        if staged is None:
            return  # every worker is busy: run() waits for one, after the decision record is durable
        try:
            self._future = _helpers.submit(staged.load, self.images)
        except RuntimeError:  # the interpreter is shutting down: no helper threads
            staged.end()

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``request`` to the recognizer (only once the decision record is durable)."""
        staged = self._wait()
        if staged is None:
            staged = self._staged = self._runner.stage(self.images)  # raises WorkerError if no worker can take it
        answer: dict[str, Any] = staged.run(request, timeout)
        return answer

    def end(self, discard: bool = False) -> None:
        """Zero the images and give the worker back (``discard``: replace the worker); idempotent."""
        staged, self._staged = self._wait(), None
        if staged is not None:
            staged.end(discard)

    def end_meanwhile(self) -> Callable[[], None]:
        """Start :meth:`end` on a helper thread; call the returned function to wait for it."""
        if self._staged is None and self._future is None:
            return _nothing
        try:
            future = _helpers.submit(self.end)
        except RuntimeError:
            self.end()
            return _nothing
        return lambda: future.result()

    def _wait(self) -> Any:
        """The staged hand-off, once the helper has finished copying (``None`` if nothing was staged or the copy failed)."""
        if self._future is not None:
            future, self._future = self._future, None
            try:
                self._staged = future.result()
            except Exception:  # the worker went back; run() stages again and reports what fails then
                self._staged = None
        return self._staged


def _nothing() -> None:
    pass
