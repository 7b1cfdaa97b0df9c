"""The gate: validate -> decide -> audit (write-ahead) -> execute only what was approved -> filter.

``Gate.process(request, image)`` is the only path from an image to a recognizer.  A denied
request never reaches one; a permitted one reaches it only for the approved operation and
attributes.  By default (``isolation="required"``) the recognizer runs in confined worker
processes (:mod:`._worker`, :mod:`._confine`) that hold nothing of the gate's; what comes back
is plain data that :mod:`._contract` decodes into the gate's own result types, and one handler
per operation (:mod:`._operations`) builds the result.  ``isolation="none"`` runs the recognizer
in this process -- an explicit opt-in for trusted first-party code and tests, flagged in every
outcome record.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._compose import Composition
from .._plugins import Registry, load_registry
from ..errors import ConfigError
from ..policy import Decision, Policy
from ..recognition import Recognizer, RecognizerInfo, Result
from . import _contract, _decide, _operations, _records, _worker
from ._confine import Confinement, Limits
from ._contract import Refused
from ._evidence import CONSENT_MODES, facts_for
from ._operations import EXECUTABLE, NEEDS_RECOGNIZER

if TYPE_CHECKING:
    from ..store import AuditReceipt

#: Obligations the gate itself carries out; every other obligation is returned to the integrator.
ENGINE_ENFORCED = frozenset({"discard_raw_image", "store_on_device_only", "retention_max_days", "record_processing"})
ISOLATION_MODES = ("required", "none")
_decision_record = _records.decision_record  # tests write records with the gate's own builder

__all__ = ["CONSENT_MODES", "ENGINE_ENFORCED", "EXECUTABLE", "ISOLATION_MODES", "NEEDS_RECOGNIZER", "Gate", "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """What ``Gate.process`` returns: the decision, and a result only if it was permitted and ran."""

    decision: Decision
    status: str  # "executed" | "denied" | "error"
    result: Result | None
    error: str | None
    obligations: tuple[dict[str, Any], ...]  # left for the integrator (signage, alternative, human review...)
    enforced: tuple[dict[str, Any], ...]  # carried out by the gate
    notes: tuple[str, ...] = ()
    error_code: str | None = None  # e.g. recognizer_failed, recognizer_timeout, sandbox_violation, image_kept

    @property
    def permitted(self) -> bool:
        return self.decision.permitted

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "status": self.status,
            "result": _records.jsonable(self.result),
            "error": self.error,
            "error_code": self.error_code,
            "obligations": [dict(o) for o in self.obligations],
            "enforced": [dict(o) for o in self.enforced],
            "notes": list(self.notes),
        }


class Gate:
    """Decide every request against ``policy``; run only approved operations on ``recognizer``.

    ``audit`` (or ``store.audit``) must offer ``append(record)`` that returns only after a durable
    write and raises on failure.  ``store`` may also provide ``consent`` and ``gallery``.
    ``isolation="required"`` (default) runs the recognizer in ``workers`` confined processes and
    refuses to start if the confinement is not in force; ``isolation="none"`` runs it in-process.
    """

    def __init__(
        self,
        policy: Policy | Composition,
        recognizer: str,
        *,
        registry: Registry | None = None,
        recognizer_config: Mapping[str, Any] | None = None,
        store: Any = None,
        audit: Any = None,
        consent_mode: str = "request-only",
        timeout: float = 30.0,
        isolation: str = "required",
        workers: int = 1,
        memory_mb: int = 4096,
        cpu_seconds: float | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry if registry is not None else load_registry(())
        if recognizer not in self.registry.recognizers:
            known = ", ".join(sorted(self.registry.recognizers)) or "none"
            raise ConfigError(f"recognizer `{recognizer}` is not registered by any allowed plugin (registered: {known})")
        self.info: RecognizerInfo = self.registry.recognizers[recognizer]
        config = dict(recognizer_config or {})
        _validate_config(self.info, config)
        log = audit if audit is not None else getattr(store, "audit", None)
        if log is None or not callable(getattr(log, "append", None)):
            raise ConfigError("the gate needs an audit log (`store=` or `audit=` with a durable `append`)")
        self.audit: Any = log
        self.consent: Any = getattr(store, "consent", None)
        self.gallery: Any = getattr(store, "gallery", None)
        if consent_mode not in CONSENT_MODES:
            raise ConfigError(f"consent mode `{consent_mode}` is not one of {', '.join(CONSENT_MODES)}")
        if consent_mode != "request-only" and self.consent is None:
            raise ConfigError(f"consent mode `{consent_mode}` needs a store with a consent registry")
        if not (isinstance(timeout, (int, float)) and 0 < timeout < math.inf):
            raise ConfigError(f"timeout `{timeout}` must be a positive number of seconds")
        if isolation not in ISOLATION_MODES:
            raise ConfigError(f"isolation `{isolation}` is not one of {', '.join(ISOLATION_MODES)}")
        if not (isinstance(workers, int) and 1 <= workers <= 64):
            raise ConfigError(f"workers `{workers}` must be an integer from 1 to 64")
        self.consent_mode = consent_mode
        self.timeout = float(timeout)
        self.isolation = isolation
        self._owned_store: Any = None
        self._pool: _worker.Pool | None = None
        self._runner: Any
        if isolation == "none":
            self._runner = _worker.InProcess(self._build_in_process(config))
        else:
            self._runner = self._pool = self._start_pool(config, workers, memory_mb, cpu_seconds)
            self._finalizer = weakref.finalize(self, _worker.release, self._pool)
        self.confinement: Confinement = self._runner.confinement
        self._confinement_record = self.confinement.to_dict()

    def _build_in_process(self, config: dict[str, Any]) -> Recognizer:
        try:
            built = self.info.factory(config)
        except Exception as exc:
            raise ConfigError(f"recognizer `{self.info.id}` failed to start: {type(exc).__name__}: {_contract.masked(exc, 300)}") from exc
        if not isinstance(built, Recognizer):
            raise ConfigError(f"recognizer `{self.info.id}`'s factory returned `{type(built).__name__}`, which lacks detect/embed")
        return built

    def _start_pool(self, config: dict[str, Any], workers: int, memory_mb: int, cpu_seconds: float | None) -> _worker.Pool:
        import json

        rid = self.info.id
        if not sys.platform.startswith("linux"):
            raise ConfigError(f"isolation `required`: confined workers need Linux (this is {sys.platform}); "
                              "`isolation: none` runs trusted recognizers in-process")
        if not (isinstance(memory_mb, int) and 256 <= memory_mb <= 1 << 20):
            raise ConfigError(f"memory_mb `{memory_mb}` must be an integer from 256 to 1048576")
        cpu = self.timeout if cpu_seconds is None else cpu_seconds
        if not (isinstance(cpu, (int, float)) and 0 < cpu < math.inf):
            raise ConfigError(f"cpu_seconds `{cpu_seconds}` must be a positive number")
        try:
            factory = _worker.factory_reference(self.info.factory)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"recognizer `{rid}` cannot run in a worker process: {exc}") from exc
        spec = _worker.Spec(factory, json.dumps(config, sort_keys=True), Limits(memory_mb, float(cpu)), True, workers)
        try:
            pool = _worker.pool_for(spec)
        except _worker.WorkerError as exc:
            raise ConfigError(f"recognizer `{rid}` {_contract.masked(exc, 500)}") from None
        if not pool.confinement.confined:
            _worker.release(pool)
            raise ConfigError(f"isolation `required`: the worker for recognizer `{rid}` is not confined "
                              f"({'; '.join(pool.confinement.problems)}); refusing to run it")
        return pool

    @classmethod
    def from_config(cls, source: Any) -> Gate:
        """Build a gate from an operator configuration (a dict, or a YAML/JSON file; config.v1.json)."""
        from .._compose import load_configured
        from .._config import read_config

        config, base = read_config(source)
        registry = load_registry(config.get("plugins", {}).get("allow", ()))
        policy = load_configured(config, base, functions=registry.functions)
        store = None
        if "store" in config:
            from ..store import Masking, open_store

            masking = Masking(pointers=config["store"]["mask"]) if config["store"].get("mask") else None
            store = open_store(config["store"]["path"], base=base, masking=masking)  # a file, or postgresql://
        rec = config["recognizer"]
        limits = rec.get("limits", {})
        try:
            if config.get("approval", {}).get("required"):
                from .._approvals import require_approved

                if store is None:
                    raise ConfigError("`approval.required` needs a `store`: approvals are read from its audit chain")
                require_approved(policy, store.audit)
            gate = cls(policy, rec["id"], registry=registry, recognizer_config=rec.get("config", {}), store=store,
                       consent_mode=config.get("consent", {}).get("mode", "request-only"), timeout=rec.get("timeout_seconds", 30.0),
                       isolation=rec.get("isolation", "required"), workers=rec.get("workers", 1),
                       memory_mb=limits.get("memory_mb", 4096), cpu_seconds=limits.get("cpu_seconds_per_call"))
        except Exception:
            if store is not None:
                store.close()
            raise
        gate._owned_store = store
        return gate

    def close(self) -> None:
        """Stop using the recognizer workers and close the store this gate opened from its configuration."""
        if self._pool is not None:
            self._finalizer()
            self._pool = None
        if self._owned_store is not None:
            self._owned_store.close()
            self._owned_store = None

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- deciding without running (the service's /v1/decide) ---------------------------------
    def decide(self, request: Mapping[str, Any], *, explain: bool = False) -> tuple[Decision, AuditReceipt | None]:
        """Decide ``request`` with the gate's evidence and durably record the decision; run nothing.

        Returns the decision and its audit receipt.  Fails closed: no receipt means the record
        could not be written, and the decision is then a deny (see :mod:`._decide`).
        """
        return _decide.decide(self, request, explain)

    async def decide_async(self, request: Mapping[str, Any], *, explain: bool = False) -> tuple[Decision, AuditReceipt | None]:
        """``decide`` for an event loop: waits for the durable record without blocking the loop or a thread."""
        return await _decide.decide_async(self, request, explain)

    # -- the one path --------------------------------------------------------------------
    def process(self, request: Mapping[str, Any], image: np.ndarray | None = None, *, reference: np.ndarray | None = None, top_k: int = 5) -> Outcome:
        """Decide ``request``; if permitted, run exactly its operation on ``image`` and return the filtered result."""
        try:
            facts, consent_record = facts_for(request, self.consent_mode, self.consent, self.gallery)
            decision = self.policy.decide(facts)
        except Exception as exc:  # the evidence store failed: decide nothing on guessed facts
            facts, consent_record = request, None
            decision = _records.denied(self.policy.decide(request), "evidence_unavailable", "facegate.evidence", f"consent registry or gallery failed: {exc}")
        try:
            record = _records.decision_record(decision, facts)
            self.audit.append(record)
        except Exception as exc:
            decision = _records.denied(decision, "audit_unavailable", "facegate.audit", f"decision record not written: {exc}")
            return Outcome(decision, "denied", None, f"audit log unavailable: {exc}", (), (), error_code="audit_unavailable")
        self._observe(record)
        operation = facts.get("operation") if isinstance(facts, Mapping) else None
        if not decision.permitted:
            return self._finish(decision, "denied", None, None, None, (), (), operation=operation)
        enforced = tuple(o for o in decision.obligations if o["type"] in ENGINE_ENFORCED)
        left = tuple(o for o in decision.obligations if o["type"] not in ENGINE_ENFORCED)
        notes: list[str] = []
        job = _operations.Job(facts, decision, self.info, self.gallery, consent_record, top_k)
        try:
            result = self._execute(job, image, reference, notes)
        except Refused as exc:
            return self._finish(decision, "error", None, exc.message, exc.code, left, enforced, notes, operation=operation)
        except Exception as exc:  # the gallery or consent store failed while executing
            return self._finish(decision, "error", None, f"store failed: {type(exc).__name__}: {_contract.masked(exc, 300)}", "store_failed",
                                left, enforced, notes, operation=operation)
        return self._finish(decision, "executed", result, None, None, left, enforced, notes, operation=operation)

    def _execute(self, job: _operations.Job, image: Any, reference: Any, notes: list[str]) -> Result:
        op = job.facts["operation"]
        caps = self.info.capabilities
        if op not in EXECUTABLE:  # a pack's decide-only operation (format v2): nothing to run
            raise Refused("refused", f"`{op}` is a decide-only operation declared by the pack; the gate executes only {', '.join(sorted(EXECUTABLE))}")
        if op in NEEDS_RECOGNIZER and op not in caps.operations:
            raise Refused("refused", f"recognizer `{self.info.id}` does not declare `{op}`")
        if op not in NEEDS_RECOGNIZER:
            return _operations.HANDLERS[op](job)
        wanted: frozenset[str] = frozenset()
        if op == "analyze":
            wanted = frozenset(job.facts.get("attributes", ()))
            if not wanted:
                raise Refused("refused", "analyze needs `attributes`")
            if not wanted <= caps.attributes:
                raise Refused("refused", f"recognizer `{self.info.id}` cannot analyze {sorted(wanted - caps.attributes)}")
        if op in ("identify", "enroll") and self.gallery is None:
            raise Refused("refused", f"`{op}` needs a template gallery")
        job.with_reference = op == "verify" and reference is not None
        if op == "verify" and not job.with_reference and (self.gallery is None or not job.subject_id):
            raise Refused("refused", "verify needs a `reference` image, or a gallery and `subject.id`")
        images = [image, reference] if job.with_reference else [image]
        for item in images:
            problem = _image_problem(item)
            if problem:
                raise Refused("bad_image", problem)
        try:
            answer = self._runner.run({"op": op, "wanted": sorted(wanted)}, images, self.timeout)
        except _worker.WorkerError as exc:
            if exc.code == "recognizer_timeout":
                notes.append("the worker was stopped and its image copy wiped; a fresh worker takes its place")
                raise Refused(exc.code, f"recognizer `{self.info.id}` exceeded its {self.timeout:g} s timeout; the worker was stopped") from None
            raise Refused(exc.code, _contract.masked(f"recognizer `{self.info.id}`: {exc}", 300)) from None
        if isinstance(answer, dict) and answer.get("kept") is not False:
            notes.append(_KEPT_NOTE)
        job.decoded = _contract.decode(answer, self.info, op, wanted, [i.shape[:2] for i in images])
        notes.extend(job.decoded.notes)
        return _operations.HANDLERS[op](job)

    def _finish(self, decision: Decision, status: str, result: Result | None, error: str | None, error_code: str | None,
                left: tuple[dict[str, Any], ...], enforced: tuple[dict[str, Any], ...], notes: list[str] | tuple[str, ...] = (),
                operation: Any = None) -> Outcome:
        record = _records.outcome_record(decision, recognizer={"id": self.info.id, "version": self.info.version}, operation=operation,
                                         status=status, error=error, error_code=error_code, notes=notes, enforced=enforced,
                                         confinement=self._confinement_record)
        try:
            self.audit.append(record)
            self._observe(record)
        except Exception as exc:
            if status == "executed":
                return Outcome(decision, "error", None, f"outcome record not written, result withheld: {exc}", left, enforced, tuple(notes),
                               error_code="audit_unavailable")
        return Outcome(decision, status, result, error, left, enforced, tuple(notes), error_code)

    def _observe(self, record: dict[str, Any]) -> None:
        """Hand a durably written record to the ``record_decision`` observers: masked as the log has it, frozen copies."""
        if not self.registry.has_observers:
            return
        mask = getattr(self.audit, "mask", None)
        try:
            shown = mask(record) if callable(mask) else record
        except Exception:  # masking failed: observers get nothing rather than raw facts
            return
        self.registry.notify(shown)


_KEPT_NOTE = "the image was still referenced after the call (kept by the recognizer); the buffer was wiped and the worker replaced"


def _image_problem(image: Any) -> str:
    if not isinstance(image, np.ndarray):
        return f"an image (numpy array) is required, not `{type(image).__name__}`"
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or min(image.shape[:2]) < 8:
        return f"image must be uint8 (H, W), (H, W, 3) or (H, W, 4) and at least 8×8, got {image.dtype} {image.shape}"
    return ""


def _validate_config(info: RecognizerInfo, config: Mapping[str, Any]) -> None:
    import jsonschema

    errors = sorted(jsonschema.validators.validator_for(info.config_schema)(info.config_schema).iter_errors(config), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        raise ConfigError(f"recognizer `{info.id}` config{' at /' + where if where else ''}: {first.message}")
