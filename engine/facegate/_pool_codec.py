"""What a decision worker sends back, and how the calling process turns it into results again.

A worker decides a chunk of requests and sends ONE message for it; the caller, which still holds
the chunk's requests, turns the message back into the chunk's results.  Everything the caller
spends here is time it does not spend deciding, so the form is chosen for the caller's cost:

* as JSON bytes (``as_json``): the decisions' ``to_json()`` documents, encoded in the worker,
  joined into one buffer after a table of their lengths -- the caller only slices;
* as :class:`facegate.Decision` objects: a decision whose rules all plainly applied or not (the
  common case: its tally is kept, :class:`facegate._decide.Tally`) is sent as the rules that
  applied, its duration and its clock -- plus its determining and warning references when a
  message detail is the request's own.  The caller finds the same tally in its own copy of the
  policy (the workers hold the same revision: forked, or loaded and checked) and builds the
  decision from it as ``Procedure.decide`` does.  Any other decision (an error, an invalid
  request, a policy not in force) is sent as its fields (less the policy's identity), its clock
  and its evaluated rules' outcomes.  Either way the caller builds each decision around its own
  policy and, for a deny, around the request it already holds, so a worker's decision reads
  exactly like one made here: the same ``to_dict()`` (``unmet`` included, computed when first
  read), ``rules``, ``remedies``; its ``decision_id`` is drawn here when first read,
  ``evaluated_at`` is the worker's clock.
"""

from __future__ import annotations

import pickle
import struct
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any

from ._decision import Decision, RuleOutcomes, Trace

_HEAD = struct.Struct("<iIq")  # chunk index (-1: the worker failed), number of decisions, where JSON bytes are (-1: here)
#: fields that list rule references: an entry equal to the rule's prepared reference (no message
#: detail) is sent as the rule's index and copied from the caller's own reference, as ``decide`` copies it
_REFERRING = ("determining", "warnings")


def _references(procedure: Any) -> tuple[tuple[dict[str, Any], ...], dict[str, int]]:
    refs = getattr(procedure, "refs", ())
    return refs, {ref["rule"]: i for i, ref in enumerate(refs)}


def _refer(refs: tuple[dict[str, Any], ...], index: dict[str, int], entry: dict[str, Any]) -> int | dict[str, Any]:
    i = index.get(entry.get("rule"))  # type: ignore[arg-type]
    return i if i is not None and entry == refs[i] else entry


class Shelf:
    """Memory a worker shares with the caller (mapped before the fork) for its answers as JSON
    bytes: the worker writes each chunk's documents after the last, the caller copies each out
    once -- instead of both copying them through a pipe.  Only the pages written are ever
    allocated; a chunk that no longer fits goes through the pipe.

    ``slots``: a kept worker's shelf is cut into that many equal slots, used in turn, one chunk
    each (:class:`facegate._pool.DecisionPool` gives it as many as it has chunks in flight: a
    slot is written again only after the caller took the chunk that was in it out)."""

    def __init__(self, size: int, slots: int = 1) -> None:
        import mmap

        self.memory = mmap.mmap(-1, size)
        self.end = 0  # the worker's: where the next chunk goes
        self.limit = size  # ... and where its room ends
        self.slots, self.turn = slots, -1

    def next_slot(self) -> None:
        """A kept worker's next chunk goes into the next slot, from its start."""
        size = len(self.memory) // self.slots
        self.turn = (self.turn + 1) % self.slots
        self.end, self.limit = self.turn * size, (self.turn + 1) * size

    def put(self, blobs: list[bytes]) -> int:
        total = sum(map(len, blobs))
        at = self.end
        if at + total > self.limit:
            return -1
        self.memory[at:at + total] = b"".join(blobs)
        self.end = at + total
        return at

    def close(self) -> None:
        self.memory.close()


def decide_here(procedure: Any, requests: Iterable[Any], as_json: bool) -> list[Any]:
    """The chunk's results decided in this process, in the form asked for."""
    decide = procedure.decide
    if as_json:
        return [decide(r, False, None).to_json() for r in requests]
    return [decide(r, False, None) for r in requests]


#: a chunk of requests given as their JSON documents (``DecisionPool.decide_json``), answered as JSON bytes
DOCUMENTS = "documents"


def decide_documents(procedure: Any, documents: Iterable[bytes]) -> list[bytes]:
    """Each request given as its JSON document, decided; each decision as its JSON bytes.  A
    document that is not JSON is decided as an invalid request saying why (:mod:`facegate._json_in`)."""
    from ._json_in import NotJSON, read_json  # here: deciding dicts does not import orjson

    decide, out = procedure.decide, []
    for document in documents:
        try:
            request = read_json(document)
        except NotJSON as exc:
            out.append(procedure.unreadable(str(exc)).to_json())
            continue
        out.append(decide(request, False, None).to_json())
    return out


#: a chunk of documents: a mark no pickle starts with (pickles begin with the PROTO opcode, 0x80), the
#: chunk's index and its number of documents, then their lengths and their bytes
_DOCS_HEAD = struct.Struct("<cqI")
_DOCS_MARK = b"D"


def pack_documents(documents: Sequence[bytes], index_: int = 0) -> bytes:
    """A chunk of documents as one message: their lengths, then their bytes."""
    return b"".join((_DOCS_HEAD.pack(_DOCS_MARK, index_, len(documents)), array("I", map(len, documents)).tobytes(), *documents))


def is_documents(message: bytes) -> bool:
    return message[:1] == _DOCS_MARK


def index_of_documents(message: bytes) -> int:
    return int(_DOCS_HEAD.unpack_from(message)[1])


def unpack_documents(message: bytes) -> list[bytes]:
    _, _, count = _DOCS_HEAD.unpack_from(message)
    start = _DOCS_HEAD.size
    lengths = array("I")
    lengths.frombytes(message[start:start + 4 * count])
    ends = list(accumulate(lengths, initial=start + 4 * count))
    return [message[a:b] for a, b in zip(ends, ends[1:])]


def encode_documents(procedure: Any, index_: int, message: bytes, shelf: Shelf | None = None) -> bytes:
    """Decide a chunk of documents (in a worker); the answer as ``encode`` sends JSON bytes."""
    return _answer(index_, decide_documents(procedure, unpack_documents(message)), shelf)


def _answer(index_: int, blobs: list[bytes], shelf: Shelf | None) -> bytes:
    """A chunk's JSON bytes as one message: on the shelf when they fit there (the message says
    where), else after the table of their lengths."""
    lengths = array("I", map(len, blobs)).tobytes()
    at = shelf.put(blobs) if shelf is not None else -1
    if at >= 0:
        return _HEAD.pack(index_, len(blobs), at) + lengths
    return b"".join((_HEAD.pack(index_, len(blobs), -1), lengths, *blobs))


def encode(procedure: Any, index_: int, requests: Sequence[Any], as_json: bool, shelf: Shelf | None = None) -> bytes:
    """Decide a chunk (in a worker) and encode its results as one message; JSON bytes go on the
    ``shelf`` (memory shared with the caller) when one is given and they fit there."""
    decide = procedure.decide
    if as_json:
        return _answer(index_, [decide(r, False, None).to_json() for r in requests], shelf)
    refs, index = _references(procedure)
    out: list[Any] = []
    for request in requests:
        fields = decide(request, False, None).__dict__  # the decision is this worker's alone: taken apart
        applied = fields.get("_applied")
        if applied is not None:  # a kept tally: the rules that applied name it (one pickled tuple per tally)
            clock = fields["_trace"].clock
            if fields["_form"].detailed:
                out.append((applied, fields["duration_us"], clock, fields["determining"], fields["warnings"]))
            else:
                out.append((applied, fields["duration_us"], clock))
            continue
        trace = fields.pop("_trace")
        for private in ("_outcomes", "_origin", "_form", "_applied"):
            fields.pop(private, None)
        del fields["policy"]
        for key in _REFERRING:
            if fields[key]:
                fields[key] = tuple(_refer(refs, index, entry) for entry in fields[key])
        out.append((fields, trace.clock, trace.outcomes))
    return _HEAD.pack(index_, len(out), -1) + pickle.dumps(out, pickle.HIGHEST_PROTOCOL)


def failure(message: str) -> bytes:
    """The message a worker sends when it cannot decide: the caller raises it."""
    return _HEAD.pack(-1, 0, -1) + message.encode("utf-8", "replace")


def index_of(message: bytes) -> int:
    return int(_HEAD.unpack_from(message)[0])


def failure_text(message: bytes) -> str:
    return message[_HEAD.size:].decode("utf-8", "replace")


def decode(procedure: Any, message: bytes, requests: Sequence[Any], as_json: bool, shelf: Shelf | None = None) -> list[Any]:
    """A chunk's results from a worker's message, rebuilt around this process's policy and requests."""
    _, count, at = _HEAD.unpack_from(message)
    if count != len(requests):
        raise ValueError(f"a worker answered {count} decisions for {len(requests)} requests")
    if as_json:
        lengths = array("I")
        lengths.frombytes(message[_HEAD.size:_HEAD.size + 4 * count])
        source: Any = message
        if at < 0:
            at = _HEAD.size + 4 * count
        elif shelf is not None:
            source = shelf.memory
        else:
            raise ValueError("a worker put its answer on a shelf this process does not have")
        ends = list(accumulate(lengths, initial=at))
        return [source[a:b] for a, b in zip(ends, ends[1:])]
    items = pickle.loads(memoryview(message)[_HEAD.size:])
    policy, ident, ids, template, params, refs = (procedure.policy, procedure.ident, procedure.ids, procedure.template,
                                                  procedure.params, getattr(procedure, "refs", ()))
    shared: dict[int, RuleOutcomes] = {}  # one per outcomes map of the decisions sent whole
    out = []
    for item, request in zip(items, requests, strict=True):
        head = item[0]
        if type(head) is tuple:  # a kept tally, named by the rules that applied
            out.append(procedure.rebuilt(head, request, item[2], item[1], (item[3], item[4]) if len(item) == 5 else None))
            continue
        fields, clock, outcomes = item
        for key in _REFERRING:
            if fields[key]:
                fields[key] = tuple({**refs[e]} if type(e) is int else e for e in fields[key])
        rule_outcomes = shared.get(id(outcomes))
        if rule_outcomes is None:
            rule_outcomes = shared[id(outcomes)] = RuleOutcomes(outcomes or {}, ids, template)
        fields["_outcomes"] = rule_outcomes
        if outcomes is not None and fields["effect"] == "deny":  # what its unmet and remedies come from, as here
            fields["_trace"] = Trace(policy, {"params": params, "request": request}, outcomes, None, clock)
            fields["_origin"] = (policy, request, None)
        else:
            fields["_trace"] = Trace(policy, None, outcomes, None, clock)
        fields["policy"] = ident
        decision = object.__new__(Decision)  # as Decision._make builds it
        decision.__dict__.update(fields)
        out.append(decision)
    return out
