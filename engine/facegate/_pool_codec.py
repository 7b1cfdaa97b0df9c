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

_HEAD = struct.Struct("<iI")  # chunk index (-1: the worker failed), number of decisions
_PRIVATE = ("_trace", "_outcomes", "_origin")
#: fields that list rule references: an entry equal to the rule's prepared reference (no message
#: detail) is sent as the rule's index and copied from the caller's own reference, as ``decide`` copies it
_REFERRING = ("determining", "warnings")


def _references(procedure: Any) -> tuple[tuple[dict[str, Any], ...], dict[str, int]]:
    refs = getattr(procedure, "refs", ())
    return refs, {ref["rule"]: i for i, ref in enumerate(refs)}


def _refer(refs: tuple[dict[str, Any], ...], index: dict[str, int], entry: dict[str, Any]) -> int | dict[str, Any]:
    i = index.get(entry.get("rule"))  # type: ignore[arg-type]
    return i if i is not None and entry == refs[i] else entry


def decide_here(procedure: Any, requests: Iterable[Any], as_json: bool) -> list[Any]:
    """The chunk's results decided in this process, in the form asked for."""
    decide = procedure.decide
    if as_json:
        return [decide(r, False, None).to_json() for r in requests]
    return [decide(r, False, None) for r in requests]


def encode(procedure: Any, index_: int, requests: Sequence[Any], as_json: bool) -> bytes:
    """Decide a chunk (in a worker) and encode its results as one message."""
    decide = procedure.decide
    if as_json:
        blobs = [decide(r, False, None).to_json() for r in requests]
        return b"".join((_HEAD.pack(index_, len(blobs)), array("I", map(len, blobs)).tobytes(), *blobs))
    refs, index = _references(procedure)
    out = []
    for request in requests:
        fields = decide(request, False, None).__dict__  # the decision is this worker's alone: taken apart
        trace = fields.pop("_trace")
        for key in _PRIVATE[1:]:
            fields.pop(key, None)
        del fields["policy"]
        for key in _REFERRING:
            if fields[key]:
                fields[key] = tuple(_refer(refs, index, entry) for entry in fields[key])
        out.append((fields, trace.clock, trace.outcomes))
    return _HEAD.pack(index_, len(out)) + pickle.dumps(out, pickle.HIGHEST_PROTOCOL)


def failure(message: str) -> bytes:
    """The message a worker sends when it cannot decide: the caller raises it."""
    return _HEAD.pack(-1, 0) + message.encode("utf-8", "replace")


def index_of(message: bytes) -> int:
    return int(_HEAD.unpack_from(message)[0])


def failure_text(message: bytes) -> str:
    return message[_HEAD.size:].decode("utf-8", "replace")


def decode(procedure: Any, message: bytes, requests: Sequence[Any], as_json: bool) -> list[Any]:
    """A chunk's results from a worker's message, rebuilt around this process's policy and requests."""
    count = _HEAD.unpack_from(message)[1]
    if count != len(requests):
        raise ValueError(f"a worker answered {count} decisions for {len(requests)} requests")
    if as_json:
        lengths = array("I")
        lengths.frombytes(message[_HEAD.size:_HEAD.size + 4 * count])
        start = _HEAD.size + 4 * count
        ends = list(accumulate(lengths, initial=start))
        return [message[a:b] for a, b in zip(ends, ends[1:])]
    items = pickle.loads(memoryview(message)[_HEAD.size:])
    policy, ident, ids, template, params, refs = (procedure.policy, procedure.ident, procedure.ids, procedure.template,
                                                  procedure.params, getattr(procedure, "refs", ()))
    new = object.__new__
    shared: dict[int, RuleOutcomes] = {}  # one per outcomes map: decisions with the same rules applied share it, as here
    out = []
    for (fields, clock, outcomes), request in zip(items, requests, strict=True):
        for key in _REFERRING:
            if fields[key]:
                fields[key] = tuple({**refs[e]} if type(e) is int else e for e in fields[key])
        if outcomes is not None and fields["effect"] == "deny":  # what its unmet and remedies come from, as here
            fields["_trace"] = Trace(policy, {"params": params, "request": request}, outcomes, None, clock)
            fields["_origin"] = (policy, request, None)
        else:
            fields["_trace"] = Trace(policy, None, outcomes, None, clock)
        fields["policy"] = ident
        rule_outcomes = shared.get(id(outcomes))
        if rule_outcomes is None:
            rule_outcomes = shared[id(outcomes)] = RuleOutcomes(outcomes or {}, ids, template)
        fields["_outcomes"] = rule_outcomes
        decision = new(Decision)  # as Decision._make builds it
        decision.__dict__.update(fields)
        out.append(decision)
    return out
