"""Decide only (``Gate.decide`` / ``Gate.decide_async``): the gate's evidence, the record written ahead, nothing run.

The decision is taken exactly as ``Gate.process`` takes it -- the gate's policy, consent from its
registry in the configured mode, ``actor.stored_persons`` from its gallery -- and its decision
record (the same builder, marked ``"channel": "decide"`` because no outcome record follows) is
durably appended before the decision is returned.  Nothing is executed, so there is no outcome.

Failing closed: if the consent registry or the gallery fails, the request is decided on its own
facts and turned into a deny (``evidence_unavailable``); if the record cannot be written, the
decision is turned into a deny (``audit_unavailable``) and returned *without* a receipt.  A
decision with a receipt is on disk; one without is not, and is always a deny.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AuditWriteError
from ..policy import Decision
from . import _records
from ._evidence import facts_for

if TYPE_CHECKING:
    from . import Gate


def prepare(gate: Gate, request: Any, explain: bool, *, copy_request: bool = True) -> tuple[Decision, dict[str, Any]]:
    """The decision on the gate's evidence and the record to write ahead for it (no write yet)."""
    try:
        facts, _ = facts_for(request, gate.consent_mode, gate.consent, gate.gallery)
        decision = gate.policy.decide(facts, explain=explain)
    except Exception as exc:  # the evidence store failed: decide nothing on guessed facts
        facts = request
        decision = _records.denied(gate.policy.decide(request, explain=explain), "evidence_unavailable", "facegate.evidence",
                                   f"consent registry or gallery failed: {exc}")
    return decision, {**_records.decision_record(decision, facts, copy_request=copy_request), "channel": "decide"}


def unrecorded(decision: Decision, exc: BaseException | str) -> Decision:
    return _records.denied(decision, "audit_unavailable", "facegate.audit", f"decision record not written: {exc}")


def decide(gate: Gate, request: Any, explain: bool) -> tuple[Decision, Any]:
    decision, record = prepare(gate, request, explain)
    try:
        receipt = gate.audit.append(record)
    except Exception as exc:
        return unrecorded(decision, exc), None
    gate._observe(record)
    return decision, receipt


async def decide_async(gate: Gate, request: Any, explain: bool) -> tuple[Decision, Any]:
    # With ``append_later`` the record is encoded before this returns to the loop, so it need not
    # copy the request -- unless observers will read the record after the wait.
    encoded_at_once = hasattr(gate.audit, "append_later") and not gate.registry.has_observers
    decision, record = prepare(gate, request, explain, copy_request=not encoded_at_once)
    try:
        receipt = await append_async(gate.audit, record)
    except Exception as exc:
        return unrecorded(decision, exc), None
    if gate.registry.has_observers:  # plugin code: not on the event loop
        await asyncio.get_running_loop().run_in_executor(None, gate._observe, record)
    return decision, receipt


async def append_async(audit: Any, record: Mapping[str, Any]) -> Any:
    """``audit.append(record)`` without blocking the event loop.

    With a log that offers ``append_later`` (the SQLite and PostgreSQL logs), the record joins the
    writer thread's next group commit and this coroutine resumes when that commit is durable: no
    thread waits per request.  Any other log's ``append`` runs in the loop's default executor.
    """
    loop = asyncio.get_running_loop()
    later: Callable[..., None] | None = getattr(audit, "append_later", None)
    if later is None:
        return await loop.run_in_executor(None, audit.append, record)
    future: asyncio.Future[Any] = loop.create_future()

    def done(receipt: Any, error: str | None) -> None:  # on the writer thread
        loop.call_soon_threadsafe(_settle, future, receipt, error)

    later(record, done)
    # A cancelled wait (client gone, shutdown) abandons only the wait: the record is queued and
    # will be written all the same; ``_settle`` then finds the future done and leaves it.
    return await future


def _settle(future: asyncio.Future[Any], receipt: Any, error: str | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(AuditWriteError(error))
    else:
        future.set_result(receipt)
