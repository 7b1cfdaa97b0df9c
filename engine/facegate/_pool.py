"""Deciding on every core: worker processes, each holding the same compiled policy.

One Python process decides on one core (the GIL).  :class:`DecisionPool` forks worker processes
that inherit the loaded :class:`facegate.Policy` (nothing is parsed or compiled again, and the
pack cannot differ from the parent's).  Requests go to them in chunks over one pipe each, and
decisions come back as :class:`facegate.Decision` objects with their id, timestamp and rule
outcomes fixed (or, with ``as_json``, as their JSON bytes, encoded in the worker).

The calling process decides too (``caller_helps``): it takes chunks from the back of the batch
while the workers are fed chunks from the front, two in flight each.  It feeds them itself,
between its own chunks, on the thread that called -- no feeder or manager threads: in one
process those would wait for the caller to give up the interpreter lock, and the workers would
starve (with ``concurrent.futures``' process pool the caller ended up deciding nine chunks in
ten).  So a worker's whole cost to the caller is pickling its requests and unpickling its answers --
or, for JSON documents in (``decide_json``) and JSON bytes out, copying bytes: a forked worker
writes its JSON answers into memory it shares with the caller (a shelf in two slots, one per chunk
in flight), and the caller copies each document out once.

A batch that fails (a worker died or raised) leaves the pool refusing further batches: a
worker's answer to the failed batch could otherwise be read as the next one's.

Forking copies the parent as it is: create the pool before starting threads (a lock another
thread holds at the fork stays held in the child).  Where ``fork`` is unavailable, or with
``start_method="spawn"``, each worker loads the pack again from its folder and refuses to decide
if the revision differs from the parent's.  A worker that fails or dies makes ``decide_many``
raise :class:`facegate.FacegateError`; nothing is silently dropped.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
from collections.abc import Iterable, Mapping
from itertools import islice
from multiprocessing.connection import Connection, wait
from typing import Any

from . import _pool_codec as codec
from ._forked import paused_collector
from .errors import FacegateError

_POLICIES: dict[int, Any] = {}  # token -> policy, read by forked workers
_IN_FLIGHT = 2  # chunks sent ahead to each worker: one to decide, one waiting
#: a kept worker's shelf for JSON answers, in _IN_FLIGHT slots: a slot holds a chunk of ~300 decisions
#: (~2.5-3.5 KB each; only the pages written are allocated, and a chunk that does not fit goes through the pipe)
_SHELF_BYTES = 2 * 1024 * 1024


class DecisionPool:
    """``with DecisionPool(policy, processes=2) as pool: decisions = pool.decide_many(requests)``."""

    def __init__(self, policy: Any, processes: int | None = None, *, start_method: str | None = None,
                 caller_helps: bool = True) -> None:
        self.policy = policy
        self.processes = processes or _cores()
        self.caller_helps = caller_helps
        method = start_method or ("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        policy._procedure.prepare()  # every operation compiled before the fork: workers compile nothing
        if method == "fork":
            token = id(policy)
            _POLICIES[token] = policy
            args: tuple[Any, ...] = ("fork", token)
        else:
            if policy.pack.functions is not None and not _default_functions(policy.pack.functions):
                raise FacegateError("a policy loaded with custom cel functions can only be shared by forking")
            args = ("load", str(policy.pack.root), policy.pack.backend, policy.revision)
        self._token = args[1] if method == "fork" else None
        context = multiprocessing.get_context(method)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._shelves: dict[Connection, codec.Shelf | None] = {}
        self._broken: str | None = None  # why a batch failed: its workers' later answers would be stale
        for _ in range(self.processes):
            mine, theirs = context.Pipe()
            # JSON answers wait on memory shared with this process (a forked worker only): one slot per chunk in flight
            shelf = codec.Shelf(_SHELF_BYTES, slots=_IN_FLIGHT) if method == "fork" and _SHELF_BYTES > 0 else None
            proc = context.Process(target=_serve, args=(theirs, args, shelf), daemon=True)  # type: ignore[attr-defined]
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)
            self._shelves[mine] = shelf

    def decide_many(self, requests: Iterable[Mapping[str, Any]], *, chunksize: int = 128, as_json: bool = False) -> list[Any]:
        """Decide every request, in order, on the pool's processes (and on this one).

        ``as_json``: each decision as its JSON bytes (``Decision.to_json()``, encoded where it was
        decided) instead of a :class:`Decision`: what a batch answer or a file of decisions needs,
        and less for this process to receive."""
        return self._spread(list(_chunks(iter(requests), chunksize)), as_json)

    def decide_json(self, documents: Iterable[bytes | str], *, chunksize: int = 256) -> list[bytes]:
        """Decide every request given as its JSON document (bytes; a JSON Lines file's lines), in
        order; each decision as its JSON bytes.  A document that is not JSON is decided as an
        invalid request saying why, as ``facegate serve`` refuses such a body.

        The workers read the documents themselves: to send a chunk, this process only copies its
        bytes -- nothing is pickled either way -- so the pool comes closest to a core's worth of
        decisions per worker here (docs/performance.md).  Chunks are larger than ``decide_many``'s:
        each costs two process wake-ups, which weigh more here (measured: one worker and the
        caller at 64, 128, 256 documents a chunk, 1.75x, 1.84x, 1.87x one process)."""
        return self._spread(list(_chunks(map(_document, documents), chunksize)), codec.DOCUMENTS)

    def _spread(self, chunks: list[list[Any]], form: bool | str) -> list[Any]:
        """The chunks decided on the workers (fed from the front) and on this process (from the back)."""
        done: list[Any] = [None] * len(chunks)
        front, back = 0, len(chunks) - 1
        waiting: dict[Connection, int] = dict.fromkeys(self._conns, 0)
        procedure = self.policy._procedure
        documents = form == codec.DOCUMENTS
        as_json = documents or bool(form)

        def here(chunk: list[Any]) -> list[Any]:
            return codec.decide_documents(procedure, chunk) if documents else codec.decide_here(procedure, chunk, as_json)

        def feed(conn: Connection) -> None:
            nonlocal front
            while waiting[conn] < _IN_FLIGHT and front <= back:
                try:
                    if documents:  # bytes as they are: nothing to pickle
                        conn.send_bytes(codec.pack_documents(chunks[front], front))
                    else:
                        conn.send((front, form, chunks[front]))
                except OSError as exc:
                    raise FacegateError(f"a decision worker died ({exc}); its chunk was not decided") from exc
                front += 1
                waiting[conn] += 1

        def collect(conns: list[Any]) -> None:
            for conn in conns:
                try:
                    message = conn.recv_bytes()
                except (EOFError, OSError) as exc:
                    raise FacegateError(f"a decision worker died ({exc or 'pipe closed'}); its chunk was not decided") from exc
                index = codec.index_of(message)
                if index < 0:
                    raise FacegateError(f"a decision worker failed: {codec.failure_text(message)}")
                done[index] = codec.decode(procedure, message, chunks[index], as_json, self._shelves.get(conn))
                waiting[conn] -= 1
                feed(conn)

        if self._broken is not None:
            raise FacegateError(f"this pool can no longer decide: {self._broken}")
        if not self._conns:
            raise FacegateError("this pool is closed")
        try:
            with paused_collector():  # as Policy.decide_many: no collector passes over the growing batch
                for conn in self._conns:
                    feed(conn)
                while front <= back or any(waiting.values()):
                    if self.caller_helps and front <= back:
                        collect(wait(self._conns, timeout=0))  # answers in: send those workers more first
                        if front > back:
                            continue
                        done[back] = here(chunks[back])
                        back -= 1
                    else:
                        collect(wait([c for c, n in waiting.items() if n]))
        except BaseException as exc:  # a worker's answer to this batch may still come: never read it as the next one's
            self._broken = f"a batch failed ({type(exc).__name__}: {exc})"
            raise
        return [d for chunk in done for d in chunk]

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
            conn.close()
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for shelf in self._shelves.values():
            if shelf is not None:
                shelf.close()
        self._conns, self._procs, self._shelves = [], [], {}
        if self._token is not None:
            _POLICIES.pop(self._token, None)

    def __enter__(self) -> DecisionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _document(value: Any) -> bytes:
    """A request's JSON document as bytes: bytes as they are, any other bytes-like copied, a ``str``
    encoded (a lone surrogate kept as its bytes: that document is then read as not UTF-8)."""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:
        return memoryview(value).tobytes()
    except TypeError:
        raise TypeError(f"decide_json takes each request as its JSON document (bytes or str), not `{type(value).__name__}`; "
                        "decide_many takes requests as dicts") from None


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def _chunks(items: Any, size: int) -> Iterable[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _default_functions(functions: Mapping[str, Any]) -> bool:
    from ._plugins import builtin_functions

    return set(functions) == set(builtin_functions())


def _adopt(how: str, *args: Any) -> Any:
    if how == "fork":
        return _POLICIES[args[0]]
    from .policy import load_policy

    root, backend, revision = args
    policy = load_policy(root, backend=backend)
    if policy.revision != revision:
        raise FacegateError(f"the pack at `{root}` changed since it was loaded ({policy.revision[:19]}, not {revision[:19]})")
    return policy


def _serve(conn: Connection, args: tuple[Any, ...], shelf: codec.Shelf | None = None) -> None:
    """A worker: decide each chunk it is sent until told to stop (``None``) or the pipe closes."""
    gc.freeze()  # a forked worker's inherited heap is never collected: no page of it copied for that
    try:
        policy = _adopt(*args)
    except Exception as exc:  # noqa: BLE001 - reported to the caller, who raises
        policy, failure = None, f"{type(exc).__name__}: {exc}"
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        documents = codec.is_documents(message)
        if documents:
            index, as_json, payload = codec.index_of_documents(message), True, message
        else:
            item = pickle.loads(message)  # what conn.send pickled: (index, as_json, requests), or None to stop
            if item is None:
                return
            index, as_json, payload = item
        try:
            if policy is None:
                raise FacegateError(failure)
            if as_json and shelf is not None:  # JSON bytes: this chunk's answer in the next slot
                shelf.next_slot()
            if documents:
                conn.send_bytes(codec.encode_documents(policy._procedure, index, payload, shelf))
            else:
                conn.send_bytes(codec.encode(policy._procedure, index, payload, as_json, shelf))
        except Exception as exc:  # noqa: BLE001 - the caller raises it, naming the worker
            conn.send_bytes(codec.failure(f"{type(exc).__name__}: {exc}"))
