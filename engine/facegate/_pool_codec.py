"""What a decision worker sends back, and how the calling process turns it into results again.

A worker decides a chunk of requests and sends ONE message for it; the caller, which still holds
the chunk's requests, turns the message back into the chunk's results.  Everything the caller
spends here is time it does not spend deciding, so the form is chosen for the caller's cost:

* as JSON bytes (``as_json``): the decisions' ``to_json()`` documents, encoded in the worker,
  joined into one buffer after a table of their lengths -- the caller only slices;
* as :class:`facegate.Decision` objects: each decision's fields (less the policy's identity, which
  the caller's copy of the policy supplies), its clock and its evaluated rules' outcomes, pickled
  in one go.  The caller rebuilds each decision around its own copy of the policy and, for a
  deny, around the request it already holds, so a worker's decision reads exactly like one made
  here: the same ``to_dict()`` (``unmet`` included, computed when first read), ``rules``,
  ``remedies``; its ``decision_id`` is drawn here when first read, ``evaluated_at`` is the
  worker's clock.
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
_PRIVATE = ("_trace", "_outcomes", "_origin")
#: fields that list rule references: an entry equal to the rule's prepared reference (no message
#: detail) is sent as the rule's index and copied from the caller's own reference, as ``decide`` copies it
_REFERRING = ("determining", "warnings")
#: what two decisions with the same rule outcomes (the same rules applied) share unless a message
#: detail or an error text is the request's own
_CONTENT = ("effect", "reason", "determining", "errors", "warnings", "obligations", "violations", "explanation")
_MEMO_KEPT = 4096  # decisions a worker's stream keeps by number (a pack's sets of applied rules, in practice)


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
    allocated; a chunk that no longer fits goes through the pipe."""

    def __init__(self, size: int) -> None:
        import mmap

        self.memory = mmap.mmap(-1, size)
        self.end = 0  # the worker's: where the next chunk goes

    def put(self, blobs: list[bytes]) -> int:
        total = sum(map(len, blobs))
        at = self.end
        if at + total > len(self.memory):
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


def encode(procedure: Any, index_: int, requests: Sequence[Any], as_json: bool, shelf: Shelf | None = None,
           memo: dict[int, Any] | None = None) -> bytes:
    """Decide a chunk (in a worker) and encode its results as one message; JSON bytes go on the
    ``shelf`` (memory shared with the caller) when one is given and they fit there.  ``memo``: the
    decisions this worker's stream has sent whole, by number (the caller keeps the same numbers and
    decodes every message of the stream, in order); one equal in content to such a decision is sent
    as its number, its duration and its clock."""
    decide = procedure.decide
    if as_json:
        blobs = [decide(r, False, None).to_json() for r in requests]
        lengths = array("I", map(len, blobs)).tobytes()
        at = shelf.put(blobs) if shelf is not None else -1
        if at >= 0:
            return _HEAD.pack(index_, len(blobs), at) + lengths
        return b"".join((_HEAD.pack(index_, len(blobs), -1), lengths, *blobs))
    refs, index = _references(procedure)
    out: list[Any] = []
    for request in requests:
        fields = decide(request, False, None).__dict__  # the decision is this worker's alone: taken apart
        trace, rule_outcomes = fields.pop("_trace"), fields.pop("_outcomes")
        fields.pop("_origin", None)
        fields.pop("_form", None)  # the tally's generated to_dict form stays here (the caller copies instead)
        del fields["policy"]
        number = -1
        if memo is not None:
            known = memo.get(id(rule_outcomes))
            if known is not None and all(known[1][k] == fields[k] for k in _CONTENT):
                out.append((known[0], fields["duration_us"], trace.clock))  # as that one, but for its time
                continue
            if known is None and len(memo) < _MEMO_KEPT:
                number = len(memo)  # kept with its rule outcomes, so their id is not reused
                memo[id(rule_outcomes)] = (number, {k: fields[k] for k in _CONTENT}, rule_outcomes)
        for key in _REFERRING:
            if fields[key]:
                fields[key] = tuple(_refer(refs, index, entry) for entry in fields[key])
        out.append((fields, trace.clock, trace.outcomes, number))
    return _HEAD.pack(index_, len(out), -1) + pickle.dumps(out, pickle.HIGHEST_PROTOCOL)


def failure(message: str) -> bytes:
    """The message a worker sends when it cannot decide: the caller raises it."""
    return _HEAD.pack(-1, 0, -1) + message.encode("utf-8", "replace")


def index_of(message: bytes) -> int:
    return int(_HEAD.unpack_from(message)[0])


def failure_text(message: bytes) -> str:
    return message[_HEAD.size:].decode("utf-8", "replace")


def decode(procedure: Any, message: bytes, requests: Sequence[Any], as_json: bool, shelf: Shelf | None = None,
           kept: dict[int, dict[str, Any]] | None = None) -> list[Any]:
    """A chunk's results from a worker's message, rebuilt around this process's policy and requests.
    ``kept``: the decisions of this worker's stream sent whole, by number (see :func:`encode`)."""
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
    new = object.__new__
    shared: dict[int, RuleOutcomes] = {}  # one per outcomes map: decisions with the same rules applied share it, as here
    out = []
    for item, request in zip(items, requests, strict=True):
        if type(item[0]) is int:  # the same as an earlier decision of the stream but for its time: its own copies
            number, duration, clock = item
            same = kept[number]  # type: ignore[index]
            outcomes = same["_trace"].outcomes
            fields = {"effect": same["effect"], "reason": same["reason"], "determining": tuple(map(dict, same["determining"])),
                      "errors": tuple(map(dict, same["errors"])), "warnings": tuple(map(dict, same["warnings"])),
                      "obligations": tuple(map(dict, same["obligations"])), "violations": same["violations"],
                      "explanation": same["explanation"], "duration_us": duration, "_outcomes": same["_outcomes"]}
        else:
            fields, clock, outcomes, number = item
            for key in _REFERRING:
                if fields[key]:
                    fields[key] = tuple({**refs[e]} if type(e) is int else e for e in fields[key])
            rule_outcomes = shared.get(id(outcomes))
            if rule_outcomes is None:
                rule_outcomes = shared[id(outcomes)] = RuleOutcomes(outcomes or {}, ids, template)
            fields["_outcomes"] = rule_outcomes
            if number >= 0:
                kept[number] = fields  # type: ignore[index]
        if outcomes is not None and fields["effect"] == "deny":  # what its unmet and remedies come from, as here
            fields["_trace"] = Trace(policy, {"params": params, "request": request}, outcomes, None, clock)
            fields["_origin"] = (policy, request, None)
        else:
            fields["_trace"] = Trace(policy, None, outcomes, None, clock)
        fields["policy"] = ident
        decision = new(Decision)  # as Decision._make builds it
        decision.__dict__.update(fields)
        out.append(decision)
    return out
