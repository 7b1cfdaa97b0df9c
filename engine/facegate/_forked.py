"""``Policy.decide_many(requests, processes=N)``: one batch decided on N processes, forked for it.

The requests are known before the workers exist, so the workers are forked *after* them and
inherit them (copy on write): no request crosses a pipe.  The batch is cut into chunks; each
process -- the caller is one of them -- claims chunks in a small shared memory map, one byte per
chunk: first those of its own share (the caller the front, worker ``k`` the ``k``-th share),
then, when its share is done, the last unclaimed chunk of anyone's (work stealing: a process
slowed by other load, or by receiving, simply decides less).  A claim is a read then a write,
not atomic: two processes may now and then decide the same chunk, and the caller keeps the
first answer -- a wasted chunk, never a wrong or missing one.  A worker sends each chunk's
decisions back as one message (:mod:`facegate._pool_codec`; JSON bytes wait on a shelf of memory
shared with the caller, the message says where); the caller reads them between its own chunks,
so a worker never waits on a full pipe for long.

A worker that fails (an exception) or dies (killed, out of memory) makes ``decide_many`` raise
:class:`facegate.FacegateError` once the caller finds a chunk only that worker had claimed; the
other workers are stopped.  Decisions come back in request order, each the decision
``Policy.decide`` gives (:mod:`facegate._pool_codec` says how ids and times are kept).

Forking copies the caller as it is: call this where no other thread holds a lock the
decisions need (a service's threads, a logging handler mid-write).  Where ``fork`` is not
available the batch is decided in this process.
"""

from __future__ import annotations

import gc
import mmap
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import _pool_codec as codec
from .errors import FacegateError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

#: a smaller batch is decided here: a fork and its copy-on-write cost a few milliseconds, the time
#: to decide a few hundred requests
MIN_FORKED = 256
MIN_CHUNKS_EACH = 2  # fewer chunks than this per process: decided here
_CHUNK = 64  # requests per chunk: a few milliseconds of deciding, a message of ~200 KB as JSON
#: JSON bytes a worker's shelf holds per request of the batch (a decision's document is ~2.5-3.5 KB;
#: only the pages written are allocated, and what does not fit goes through the pipe)
_SHELF_BYTES_EACH = 8192
_PIPE_BYTES = 1 << 20  # asked for (Linux): a worker writes ~5 chunks ahead of the caller's reading


def decide_many(policy: Any, requests: Iterable[Any], processes: int, as_json: bool) -> list[Any]:
    """``Policy.decide_many``: on this process alone, or on ``processes``; the collector paused (below)."""
    with paused_collector():
        if processes > 1:
            requests = requests if isinstance(requests, list) else list(requests)
            if len(requests) >= MIN_FORKED:
                return decide_forked(policy, requests, processes, as_json=as_json)
        return codec.decide_here(policy._procedure, requests, as_json)


@contextmanager
def paused_collector() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a batch is built, as ``timeit`` pauses it.

    Decisions hold no reference cycles, so its passes during a batch find nothing of ours to
    free; they cost about a fifth of one process's time (each pass walks the requests and the
    growing list of decisions: 460 against 356 ms of CPU for 20,000 decisions), and with two
    processes all of it falls on the caller, which keeps the batch.  The collector runs again when
    the batch is done (unless it was already paused); another thread's cyclic garbage waits until
    then (docs/performance.md counts the passes deferred to after the batch too)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def decide_forked(policy: Any, requests: Sequence[Any], processes: int, *, as_json: bool = False,
                  chunksize: int | None = None) -> list[Any]:
    """Decide ``requests`` on ``processes`` processes (this one and ``processes - 1`` forked)."""
    import multiprocessing  # here: `import facegate` does not pay for it

    procedure = policy._procedure
    size = chunksize or max(8, min(_CHUNK, len(requests) // (processes * 8) or 1))
    count = -(-len(requests) // size)
    if processes <= 1 or count < MIN_CHUNKS_EACH * processes or "fork" not in multiprocessing.get_all_start_methods():
        return codec.decide_here(procedure, requests, as_json)
    procedure.prepare()  # every operation compiled before the fork: the workers compile nothing
    claims = mmap.mmap(-1, count)  # shared with the workers; 0 = unclaimed, else the claimant + 1
    chunks = [requests[i * size:(i + 1) * size] for i in range(count)]
    context = multiprocessing.get_context("fork")
    readers: dict[Connection, Any] = {}
    shelves: dict[Connection, codec.Shelf | None] = {}
    finished = False
    try:
        for party in range(1, processes):
            reader, writer = context.Pipe(duplex=False)
            _widen(writer)
            shelf = shelves[reader] = codec.Shelf(len(requests) * _SHELF_BYTES_EACH) if as_json else None
            proc = context.Process(target=_work, args=(procedure, chunks, claims, party, processes, as_json, writer, shelf), daemon=True)
            proc.start()
            writer.close()
            readers[reader] = proc
        results = _lead(procedure, chunks, claims, processes, as_json, readers, shelves)
        finished = True
        return results
    finally:
        _stop(readers, finished)
        claims.close()
        for shelf in shelves.values():
            if shelf is not None:
                shelf.close()


def _lead(procedure: Any, chunks: list[Sequence[Any]], claims: mmap.mmap, processes: int, as_json: bool,
          readers: dict[Connection, Any], shelves: dict[Connection, codec.Shelf | None]) -> list[Any]:
    """The caller's part: decide its claims, taking in the workers' answers between them."""
    from multiprocessing.connection import wait

    done: list[list[Any] | None] = [None] * len(chunks)
    open_ = list(readers)

    def take(conn: Any) -> None:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            open_.remove(conn)  # the worker is gone: what it claimed and did not send is missing
            return
        index = codec.index_of(message)
        if index < 0:
            raise FacegateError(f"a decision worker failed: {codec.failure_text(message)}")
        answer = codec.decode(procedure, message, chunks[index], as_json, shelves.get(conn))
        if done[index] is None:  # else this chunk was decided twice (a claim race): the first answer stays
            done[index] = answer

    for index in _claims(claims, 0, processes, len(chunks)):
        if done[index] is None:
            done[index] = codec.decide_here(procedure, chunks[index], as_json)
        for conn in wait(open_, timeout=0) if open_ else ():
            take(conn)
    while None in done:
        if not open_:
            missing = done.index(None)
            raise FacegateError(f"a decision worker died ({_how_ended(readers)}); chunk {missing} of "
                                f"{len(chunks)} was not decided")
        for conn in wait(open_):
            take(conn)
    return [d for chunk in done for d in chunk]  # type: ignore[union-attr]


def _claims(claims: mmap.mmap, party: int, processes: int, count: int) -> Iterator[int]:
    """The chunks this process takes: its own share in order, then the last unclaimed of anyone's."""
    mark = party + 1
    start, end = party * count // processes, (party + 1) * count // processes
    while (index := claims.find(b"\0", start, end)) >= 0:
        claims[index] = mark
        yield index
        start = index + 1
    while (index := claims.rfind(b"\0")) >= 0:
        claims[index] = mark
        yield index


def _work(procedure: Any, chunks: list[Sequence[Any]], claims: mmap.mmap, party: int, processes: int, as_json: bool,
          conn: Connection, shelf: codec.Shelf | None) -> None:
    """A forked worker: decide its claims and send each chunk's answer; on an error, say so and stop."""
    gc.freeze()  # the inherited heap is never collected here: no page of it copied for the collector's sake
    try:
        for index in _claims(claims, party, processes, len(chunks)):
            conn.send_bytes(codec.encode(procedure, index, chunks[index], as_json, shelf))
    except Exception as exc:  # noqa: BLE001 - the caller raises it
        try:
            conn.send_bytes(codec.failure(f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        conn.close()


def _widen(conn: Connection) -> None:
    """A larger pipe buffer where the kernel allows it (Linux ``F_SETPIPE_SZ``); harmless if not."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _stop(readers: dict[Connection, Any], finished: bool) -> None:
    """Close the pipes; wait for each worker (when every chunk is in, it is at most one chunk from
    its end), or, after a failure, kill it."""
    for conn, proc in readers.items():
        conn.close()
        if finished:
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _how_ended(readers: dict[Connection, Any]) -> str:
    codes = []
    for proc in readers.values():
        proc.join(1)
        code = proc.exitcode
        codes.append("still running" if code is None else f"killed by signal {-code}" if code < 0 else f"exit code {code}")
    return ", ".join(codes)
