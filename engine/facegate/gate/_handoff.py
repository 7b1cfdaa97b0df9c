"""A permitted request's hand-off to the recognizer, prepared while the gate's records commit.

The two durable audit commits (the decision record before the recognizer runs, the outcome
record before the result is returned) are a request's longest waits outside the recognizer, and
the thread waiting in them holds no lock.  So with isolated workers the gate overlaps them:

- while the caller's thread commits the decision record, a helper thread takes a worker from the
  pool and copies the images into its arena; the worker is sent the request only once the commit
  has returned.  If the commit fails, the arena is zeroed and that worker replaced (a plugin's
  thread could have read an image whose request ends denied; the worker carries nothing on);
- while the caller's thread commits the outcome record, the helper zeroes the arena and gives the
  worker back; ``process`` returns only when both are done.

The checks that decide whether the recognizer is needed at all (operation, capabilities, images)
run first, on the caller's thread; a request they refuse copies nothing.  In-process runners
(``isolation: none``) stage nothing and use no helper.  Audit logs are only ever called from the
caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ._contract import Refused

_helpers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="facegate-handoff")


class Prepared:
    """What a permitted request will hand the recognizer, checked and (isolated) being staged."""

    def __init__(self, op: str = "", wanted: frozenset[str] = frozenset(), images: list[np.ndarray] | None = None, *,
                 stage: Callable[[list[np.ndarray]], Any] | None = None, background: bool = False, refused: Refused | None = None) -> None:
        self.op, self.wanted, self.images, self.refused = op, wanted, images or [], refused
        self._staged: Any = None
        self._error: BaseException | None = None
        self._future: Future[Any] | None = None
        if stage is None or not self.images:
            return
        if background:
            try:
                self._future = _helpers.submit(stage, self.images)
                return
            except RuntimeError:  # the interpreter is shutting down: stage on this thread
                pass
        try:
            self._staged = stage(self.images)
        except Exception as exc:  # raised again by run(), once the decision record is durable
            self._error = exc

    def run(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``request`` to the recognizer (only once the decision record is durable)."""
        staged = self._wait()
        if staged is None:
            raise self._error or RuntimeError("nothing was staged")
        answer: dict[str, Any] = staged.run(request, timeout)
        return answer

    def end(self, discard: bool = False) -> None:
        """Zero the images and give the worker back (``discard``: replace the worker); idempotent."""
        staged, self._staged = self._wait(), None
        self._future = None
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
        if self._future is not None:
            future, self._future = self._future, None
            try:
                self._staged = future.result()
            except Exception as exc:
                self._error = exc
        return self._staged


def _nothing() -> None:
    pass
