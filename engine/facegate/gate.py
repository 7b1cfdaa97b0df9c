"""The gate: validate -> decide -> audit (write-ahead) -> execute only what was approved -> filter.

``Gate.process(request, image)`` is the only path from an image to a recognizer.  A denied
request never reaches one; a permitted one reaches it only for the approved operation and
attributes, through :mod:`facegate._sandbox`, and only typed, filtered results come back.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import _sandbox
from ._compose import Composition
from ._plugins import Registry, load_registry
from .errors import ConfigError, RecognizerError
from .policy import Decision, Policy
from .recognition import (
    OPERATIONS,
    AnalyzeResult,
    DetectResult,
    EnrollResult,
    EraseResult,
    Face,
    FaceAttributes,
    IdentifyResult,
    Match,
    Recognizer,
    RecognizerInfo,
    Result,
    VerifyResult,
)

#: Obligations the gate itself carries out; every other obligation is returned to the integrator.
ENGINE_ENFORCED = frozenset({"discard_raw_image", "store_on_device_only", "retention_max_days", "record_processing"})
CONSENT_MODES = ("request-only", "registry-only", "registry-overrides")
NEEDS_RECOGNIZER = frozenset(OPERATIONS)
EXECUTABLE = NEEDS_RECOGNIZER | {"erase"}  # the core envelope's operations (request.v2.json)


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

    @property
    def permitted(self) -> bool:
        return self.decision.permitted

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "status": self.status,
            "result": _jsonable(self.result),
            "error": self.error,
            "obligations": [dict(o) for o in self.obligations],
            "enforced": [dict(o) for o in self.enforced],
            "notes": list(self.notes),
        }


class _Refused(Exception):
    """Execution stopped: the message goes into an error outcome."""


class Gate:
    """Decide every request against ``policy``; run only approved operations on ``recognizer``.

    ``audit`` (or ``store.audit``) must offer ``append(record)`` that returns only after a durable
    write and raises on failure.  ``store`` may also provide ``consent`` and ``gallery``.
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
    ) -> None:
        self.policy = policy
        self.registry = registry if registry is not None else load_registry(())
        if recognizer not in self.registry.recognizers:
            known = ", ".join(sorted(self.registry.recognizers)) or "none"
            raise ConfigError(f"recognizer `{recognizer}` is not registered by any allowed plugin (registered: {known})")
        self.info: RecognizerInfo = self.registry.recognizers[recognizer]
        config = dict(recognizer_config or {})
        _validate_config(self.info, config)
        try:
            built = self.info.factory(config)
        except Exception as exc:
            raise ConfigError(f"recognizer `{recognizer}` failed to start: {type(exc).__name__}: {exc}") from exc
        if not isinstance(built, Recognizer):
            raise ConfigError(f"recognizer `{recognizer}`'s factory returned `{type(built).__name__}`, which lacks detect/embed")
        self._recognizer = built
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
        self.consent_mode = consent_mode
        self.timeout = float(timeout)
        self._owned_store: Any = None

    @classmethod
    def from_config(cls, source: Any) -> Gate:
        """Build a gate from an operator configuration (a dict, or a YAML/JSON file; config.v1.json)."""
        from ._compose import load_configured
        from ._config import read_config

        config, base = read_config(source)
        registry = load_registry(config.get("plugins", {}).get("allow", ()))
        policy = load_configured(config, base, functions=registry.functions)
        store = None
        if "store" in config:
            from .store import Masking, open_store

            masking = Masking(pointers=config["store"]["mask"]) if config["store"].get("mask") else None
            store = open_store(config["store"]["path"], base=base, masking=masking)  # a file, or postgresql://
        rec = config["recognizer"]
        try:
            if config.get("approval", {}).get("required"):
                from ._approvals import require_approved

                if store is None:
                    raise ConfigError("`approval.required` needs a `store`: approvals are read from its audit chain")
                require_approved(policy, store.audit)
            gate = cls(policy, rec["id"], registry=registry, recognizer_config=rec.get("config", {}), store=store,
                       consent_mode=config.get("consent", {}).get("mode", "request-only"), timeout=rec.get("timeout_seconds", 30.0))
        except Exception:
            if store is not None:
                store.close()
            raise
        gate._owned_store = store
        return gate

    def close(self) -> None:
        """Close the store this gate opened from its configuration (if any)."""
        if self._owned_store is not None:
            self._owned_store.close()
            self._owned_store = None

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the one path --------------------------------------------------------------------
    def process(self, request: Mapping[str, Any], image: np.ndarray | None = None, *, reference: np.ndarray | None = None, top_k: int = 5) -> Outcome:
        """Decide ``request``; if permitted, run exactly its operation on ``image`` and return the filtered result."""
        staged = _Staging(request, image, reference)  # private copies start on a worker while we decide
        try:
            return self._process(request, staged, top_k)
        finally:
            staged.cancel()  # anything not approved is wiped, never shown to the recognizer

    def _process(self, request: Mapping[str, Any], staged: _Staging, top_k: int) -> Outcome:
        try:
            facts, consent_record = self._facts(request)
            decision = self.policy.decide(facts)
        except Exception as exc:  # the evidence store failed: decide nothing on guessed facts
            facts, consent_record = request, None
            decision = _denied(self.policy.decide(request), "evidence_unavailable", "facegate.evidence", f"consent registry or gallery failed: {exc}")
        try:
            record = _decision_record(decision, facts)
            self.audit.append(record)
        except Exception as exc:
            decision = _denied(decision, "audit_unavailable", "facegate.audit", f"decision record not written: {exc}")
            return Outcome(decision, "denied", None, f"audit log unavailable: {exc}", (), ())
        self._observe(record)
        if not decision.permitted:
            return self._finish(decision, "denied", None, None, (), (), operation=_op(facts))
        enforced = tuple(o for o in decision.obligations if o["type"] in ENGINE_ENFORCED)
        left = tuple(o for o in decision.obligations if o["type"] not in ENGINE_ENFORCED)
        notes: list[str] = []
        try:
            result = self._execute(facts, decision, staged, top_k, notes, consent_record)
        except _Refused as exc:
            return self._finish(decision, "error", None, str(exc), left, enforced, notes, operation=_op(facts))
        except Exception as exc:  # the gallery or consent store failed while executing
            return self._finish(decision, "error", None, f"store failed: {type(exc).__name__}: {exc}", left, enforced, notes, operation=_op(facts))
        return self._finish(decision, "executed", result, None, left, enforced, notes, operation=_op(facts))

    def _finish(self, decision: Decision, status: str, result: Result | None, error: str | None,
                left: tuple[dict[str, Any], ...], enforced: tuple[dict[str, Any], ...], notes: list[str] | tuple[str, ...] = (),
                operation: Any = None) -> Outcome:
        decision_operation = operation if isinstance(operation, str) else None
        record = {
            "kind": "outcome",
            "decision_id": decision.decision_id,
            "time": _now(),
            "recognizer": {"id": self.info.id, "version": self.info.version},
            "operation": decision_operation,
            "outcome": "executed" if status == "executed" else ("not_executed" if status == "denied" else "error"),
            "error": error,
            "notes": list(notes),
            "enforced": [o["type"] for o in enforced],
        }
        try:
            self.audit.append(record)
            self._observe(record)
        except Exception as exc:
            if status == "executed":
                return Outcome(decision, "error", None, f"outcome record not written, result withheld: {exc}", left, enforced, tuple(notes))
        return Outcome(decision, status, result, error, left, enforced, tuple(notes))

    def _observe(self, record: dict[str, Any]) -> None:
        """Hand a durably written record to the ``record_decision`` observers, masked as the log has it."""
        if not self.registry.has_observers:
            return
        mask = getattr(self.audit, "mask", None)
        try:
            shown = mask(record) if callable(mask) else record
        except Exception:  # masking failed: observers get nothing rather than raw facts
            return
        self.registry.notify(shown)

    # -- facts from evidence ----------------------------------------------------------------
    def _facts(self, request: Mapping[str, Any]) -> tuple[Any, str | None]:
        """The request's facts, with consent and ``stored_persons`` from evidence where configured.

        Returns the facts and the consent record id they rest on (``None`` if from the request).
        """
        if not isinstance(request, Mapping):
            return request, None
        record_id: str | None = None
        facts = dict(request)
        subject = facts.get("subject")
        subject_id = subject.get("id") if isinstance(subject, Mapping) else None
        if self.consent_mode != "request-only":
            recorded = self.consent.lookup(subject_id, facts.get("purpose")) if isinstance(subject_id, str) else None
            if recorded is not None:
                facts["consent"] = {k: recorded[k] for k in ("type", "given_by", "purposes", "withdrawn") if k in recorded}
                record_id = recorded.get("record_id")
            elif self.consent_mode == "registry-only":
                facts.pop("consent", None)
        if self.gallery is not None and isinstance(facts.get("actor", {}), Mapping):
            facts["actor"] = {**facts.get("actor", {}), "stored_persons": int(self.gallery.count_subjects())}
        return facts, record_id

    # -- execution ---------------------------------------------------------------------------
    def _execute(self, facts: Mapping[str, Any], decision: Decision, staged: _Staging, top_k: int,
                 notes: list[str], consent_record: str | None) -> Result:
        op = facts["operation"]
        caps = self.info.capabilities
        if op not in EXECUTABLE:  # a pack's decide-only operation (format v2): nothing to run
            raise _Refused(f"`{op}` is a decide-only operation declared by the pack; the gate executes only {', '.join(sorted(EXECUTABLE))}")
        if op in NEEDS_RECOGNIZER and op not in caps.operations:
            raise _Refused(f"recognizer `{self.info.id}` does not declare `{op}`")
        subject_id = facts.get("subject", {}).get("id")
        if op == "erase":
            if self.gallery is None or not subject_id:
                raise _Refused("erase needs a gallery and `subject.id`")
            return EraseResult(int(self.gallery.erase_subject(subject_id)))
        types = {o["type"]: o for o in decision.obligations}
        wanted: frozenset[str] = frozenset()
        if op == "analyze":
            wanted = frozenset(facts.get("attributes", ()))
            if not wanted:
                raise _Refused("analyze needs `attributes`")
            if not wanted <= caps.attributes:
                raise _Refused(f"recognizer `{self.info.id}` cannot analyze {sorted(wanted - caps.attributes)}")
        first, ref_vec = self._recognize(staged, op, wanted, notes)
        if not isinstance(first, np.ndarray):
            return first
        vector = first
        if op == "verify":
            if staged.count > 1:
                if ref_vec is None:
                    return VerifyResult(False, None, self.info.threshold, self.info.metric, "no face in the reference image")
                score = _score(vector, ref_vec, self.info.metric)
                return VerifyResult(_same(score, self.info), score, self.info.threshold, self.info.metric)
            if self.gallery is None or not subject_id:
                raise _Refused("verify needs a `reference` image, or a gallery and `subject.id`")
            same, score = self.gallery.verify(subject_id, vector, threshold=self.info.threshold, metric=self.info.metric)
            return VerifyResult(bool(same), None if score is None else float(score), self.info.threshold, self.info.metric)
        if self.gallery is None:
            raise _Refused(f"`{op}` needs a template gallery")
        if op == "identify":
            matches = self.gallery.identify(vector, k=top_k, threshold=self.info.threshold, metric=self.info.metric, model_id=self.info.id)
            return IdentifyResult(tuple(Match(str(m.subject_id), float(m.score)) for m in matches))
        assert op == "enroll"
        if not subject_id:
            raise _Refused("enroll needs `subject.id`")
        location = facts.get("storage", {}).get("location", "server")
        if "store_on_device_only" in types and location != "on_device":
            raise _Refused(f"obligation store_on_device_only: template may not go to `{location}` storage")
        days = types.get("retention_max_days", {}).get("days")
        asked = facts.get("storage", {}).get("retention_days")
        if asked is not None:
            days = asked if days is None else min(days, asked)
        if not days:
            raise _Refused("enroll needs a retention period: `storage.retention_days` or a `retention_max_days` obligation")
        tid = self.gallery.enroll(subject_id, vector, purpose=facts["purpose"], consent_id=consent_record,
                                  retention_days=days, location=location, model_id=self.info.id, decision_id=decision.decision_id,
                                  consent_facts=None if consent_record else facts.get("consent"))  # request-stated consent is recorded
        return EnrollResult(str(tid), subject_id, days, location)

    def _recognize(self, staged: _Staging, op: str, wanted: frozenset[str], notes: list[str]) -> tuple[Result | np.ndarray, np.ndarray | None]:
        """Run the approved recognizer work for ``op`` on the staged private copies, in one hand-off.

        Returns the first image's result (or its embedding) and, for verify against a reference,
        the reference's embedding (``None`` if it shows no face).  Every copy is checked for
        holders on the worker before the result is handed back; a copy still held is wiped then,
        every other copy right after (on the worker, off the caller's path).
        """
        if staged.problem:
            raise _Refused(staged.problem)
        assert staged.job is not None  # no problem means the images were staged
        info, rec, stage = self.info, self._recognizer, ["detect"]
        violations = staged.job.out.violations

        def invoke(method: str, *args: Any) -> Any:
            fn = getattr(rec, method, None)
            if not callable(fn):
                raise _Refused(f"recognizer `{info.id}` declares it but has no `{method}`")
            stage[0], seen = method, len(violations)
            failure: BaseException | None = None
            try:
                value = fn(*args)
            except BaseException as exc:  # a recognizer's failure is data, not a crash
                exc.__traceback__ = None  # its frames would keep the image alive
                failure = exc
            if len(violations) > seen:  # even if the recognizer swallowed the refusal
                raise _Refused(f"recognizer `{info.id}` broke the sandbox in `{method}`: {'; '.join(violations[seen:])}")
            if failure is not None:
                raise _Refused(str(RecognizerError(f"recognizer `{info.id}` failed in `{method}`: "
                                                   f"{type(failure).__name__}: {failure}"))) from failure
            return value

        def detect(img: np.ndarray) -> list[Face]:
            faces = invoke("detect", img)
            if not isinstance(faces, (list, tuple)):
                raise _Refused(f"recognizer `{info.id}` returned malformed detect output `{type(faces).__name__}`")
            h, w = img.shape[:2]
            for f in faces:
                problem = _face_problem(f, w, h)
                if problem:
                    raise _Refused(f"recognizer `{info.id}` returned a malformed face: {problem}")
            return list(faces)

        def on_image(img: np.ndarray) -> Result | np.ndarray:
            faces = detect(img)
            if op == "detect":
                return DetectResult(tuple(faces))
            if op == "analyze":
                out = []
                for face in faces:
                    attrs = invoke("analyze", img, face, wanted)
                    if not isinstance(attrs, Mapping):
                        raise _Refused(f"recognizer `{info.id}` returned malformed analyze output `{type(attrs).__name__}`")
                    extra = sorted(set(attrs) - wanted)
                    if extra:
                        notes.append(f"dropped attributes the decision did not approve: {extra}")
                    out.append(FaceAttributes(face, {k: _plain(attrs[k]) for k in sorted(wanted) if k in attrs}))
                return AnalyzeResult(tuple(out))
            if not faces:
                return self._no_face(op)
            if op == "enroll" and len(faces) != 1:
                raise _Refused(f"enroll needs exactly one face in the image, found {len(faces)}")
            return self._checked_embedding(invoke("embed", img, _largest(faces)))

        def on_reference(ref: np.ndarray) -> np.ndarray | None:
            ref_faces = detect(ref)
            return self._checked_embedding(invoke("embed", ref, _largest(ref_faces))) if ref_faces else None

        def work(bufs: list[np.ndarray]) -> tuple[Any, BaseException | None, list[bool]]:  # on the worker
            value: Any = None
            error: BaseException | None = None
            try:
                first = on_image(bufs[0])
                value = (first, on_reference(bufs[1]) if isinstance(first, np.ndarray) and len(bufs) > 1 else None)
            except BaseException as exc:
                error = exc
                exc.__traceback__ = None  # its frames would keep the image alive
            kept = [sys.getrefcount(bufs[i]) > 2 for i in range(len(bufs))]  # the list + getrefcount's argument
            for i in range(len(bufs)):
                if kept[i]:  # wiped before anyone hears of it; the others right after the hand-back
                    _wipe(bufs[i])
            return value, error, kept

        staged.job.release(work)
        call = staged.job.wait(self.timeout)
        if call.timed_out:
            staged.wipe_abandoned()
            notes.append(_KEPT_NOTE)
            raise _Refused(f"recognizer `{info.id}` exceeded its {self.timeout:g} s timeout in `{stage[0]}`")
        if call.error is not None:  # gate code failed on the worker (not the recognizer: that is `error` below)
            raise _Refused(f"staging the image failed: {type(call.error).__name__}: {call.error}")
        value, error, kept = call.value
        if any(kept):
            notes.append(_KEPT_NOTE)
            if error is None:
                raise _Refused("recognizer kept a reference to the image after the call; result withheld")
        if error is not None:
            raise error
        return cast(tuple[Result | np.ndarray, np.ndarray | None], value)

    def _no_face(self, op: str) -> Result:
        if op == "verify":
            return VerifyResult(False, None, self.info.threshold, self.info.metric, "no face found")
        if op == "identify":
            return IdentifyResult((), "no face found")
        raise _Refused("no face found in the image")

    def _checked_embedding(self, vec: Any) -> np.ndarray:
        """The recognizer's embedding, validated and copied (and unit length for cosine)."""
        if not isinstance(vec, np.ndarray) or vec.ndim != 1 or vec.size == 0 or vec.dtype.kind != "f":
            raise _Refused(f"recognizer `{self.info.id}` returned a malformed embedding")
        if self.info.embedding_size is not None and vec.size != self.info.embedding_size:
            raise _Refused(f"recognizer `{self.info.id}` returned {vec.size} values, declared {self.info.embedding_size}")
        with np.errstate(all="ignore"):  # an overflow is refused below, not warned about
            out = vec.astype(np.float32)  # a copy: the recognizer keeps no handle on what leaves the gate
            squares = float(np.dot(out, out))  # NaN or inf if any value is, or too large for float32
        if not math.isfinite(squares):
            raise _Refused(f"recognizer `{self.info.id}` returned a non-finite embedding")
        if self.info.metric == "cosine":
            if squares == 0.0:
                raise _Refused(f"recognizer `{self.info.id}` returned a zero embedding")
            out /= math.sqrt(squares)
        return out


class _Staging:
    """The images a request brings, copied into private read-only buffers on a guarded worker.

    Copying starts before the decision, so it overlaps deciding and the durable decision record;
    the recognizer sees the copies only after :meth:`Job.release`.  The caller's arrays are never
    handed to a recognizer and never modified.  Images the operation does not use are not copied.
    """

    def __init__(self, request: Any, image: Any, reference: Any) -> None:
        self.problem = ""
        self.job: _sandbox.Job | None = None
        self.count = 0
        op = request.get("operation") if isinstance(request, Mapping) else None
        if not isinstance(op, str) or op not in NEEDS_RECOGNIZER:  # a malformed request is denied; nothing to stage
            return
        images = [image] + ([reference] if op == "verify" and reference is not None else [])
        for item in images:
            self.problem = _image_problem(item)
            if self.problem:
                return
        self.count = len(images)
        self.job = _sandbox.Job(lambda: [_private_copy(i) for i in images], _wipe_all)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def wipe_abandoned(self) -> None:
        """A call overran its timeout and still runs: wipe the copies under it."""
        for buf in (self.job.staged if self.job is not None else None) or ():
            _wipe(buf)


_KEPT_NOTE = "the image was still referenced after the call (kept by the recognizer, or a call still running); the buffer was wiped"


def _image_problem(image: Any) -> str:
    if not isinstance(image, np.ndarray):
        return f"an image (numpy array) is required, not `{type(image).__name__}`"
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or min(image.shape[:2]) < 8:
        return f"image must be uint8 (H, W), (H, W, 3) or (H, W, 4) and at least 8×8, got {image.dtype} {image.shape}"
    return ""


def _private_copy(image: np.ndarray) -> np.ndarray:
    """A C-contiguous read-only RGB copy that only the gate holds."""
    buffer = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else np.array(image[:, :, :3], copy=True, order="C")
    buffer.flags.writeable = False
    return buffer


def _wipe(buffer: np.ndarray) -> None:
    buffer.flags.writeable = True
    buffer.fill(0)


def _wipe_all(buffers: list[np.ndarray]) -> None:
    for buffer in buffers:
        _wipe(buffer)


def _largest(faces: list[Face]) -> Face:
    return max(faces, key=lambda f: f.box[2] * f.box[3])


def _face_problem(f: Any, w: int, h: int) -> str:
    if not isinstance(f, Face):
        return f"`{type(f).__name__}` is not a Face"
    try:
        x, y, bw, bh = (float(v) for v in f.box)
        score = float(f.score)
        pts = [(float(a), float(b)) for a, b in f.landmarks]
    except (TypeError, ValueError):
        return "non-numeric box, score or landmarks"
    if not all(math.isfinite(v) for v in (x, y, bw, bh, score)) or bw <= 0 or bh <= 0:
        return f"box {f.box} is not a finite positive rectangle"
    if x + bw < 0 or y + bh < 0 or x > w or y > h:
        return f"box {f.box} lies outside the {w}×{h} image"
    if not 0.0 <= score <= 1.0:
        return f"score {score} is outside [0, 1]"
    if len(pts) not in (0, 5) or not all(math.isfinite(a) and math.isfinite(b) for a, b in pts):
        return "landmarks must be 0 or 5 finite points"
    return ""


def _score(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    if metric == "cosine":
        return float(np.dot(a, b))
    return float(np.linalg.norm(a - b))


def _same(score: float, info: RecognizerInfo) -> bool:
    return score > info.threshold if info.metric == "cosine" else score < info.threshold


def _plain(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _validate_config(info: RecognizerInfo, config: Mapping[str, Any]) -> None:
    import jsonschema

    errors = sorted(jsonschema.validators.validator_for(info.config_schema)(info.config_schema).iter_errors(config), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        raise ConfigError(f"recognizer `{info.id}` config{' at /' + where if where else ''}: {first.message}")


def _denied(decision: Decision, reason: str, source: str, error: str) -> Decision:
    """The same decision turned into a deny the gate imposed (no rule determined it)."""
    return dataclasses.replace(
        decision, effect="deny", reason=reason, determining=(), obligations=(),
        errors=decision.errors + ({"rule": source, "provision": "", "mode": "enforce", "error": error},),
    )


def _op(facts: Any) -> Any:
    return facts.get("operation") if isinstance(facts, Mapping) else None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat()


def _decision_record(decision: Decision, facts: Any) -> dict[str, Any]:
    return {
        "kind": "decision",
        "decision_id": decision.decision_id,
        "time": decision.evaluated_at,
        "policy": dict(decision.policy),
        "request": facts if isinstance(facts, Mapping) else {"invalid": type(facts).__name__},
        "effect": decision.effect,
        "reason": decision.reason,
        "determining": [{"rule": d["rule"], "provision": d["provision"], "article": d["article"]} for d in decision.determining],
        "obligations": [{k: v for k, v in o.items() if k != "sources"} for o in decision.obligations],
        "errors": [dict(e) for e in decision.errors],
        "violations": [dict(v) for v in decision.violations],
        "unmet": [{"rule": u["rule"], "provision": u["provision"], "failed": [f["plain"] for f in u["failed"]]} for u in decision.unmet],
        **({"packs": [dict(p) for p in decision.packs]} if hasattr(decision, "packs") else {}),
    }


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
