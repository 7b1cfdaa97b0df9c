"""One handler per operation: build the gate's result from decoded recognizer output and the gallery.

Every handler gets the facts the decision was made on, the decision, and (for operations that
need a recognizer) the already decoded, checked recognizer output.  Comparisons, 1:N search and
storage happen here, in the gate, never in the plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..policy import Decision
from ..recognition import (
    OPERATIONS,
    AnalyzeResult,
    DetectResult,
    EnrollResult,
    EraseResult,
    FaceAttributes,
    IdentifyResult,
    Match,
    RecognizerInfo,
    Result,
    VerifyResult,
)
from ._contract import Decoded, Refused

NEEDS_RECOGNIZER = frozenset(OPERATIONS)
EXECUTABLE = NEEDS_RECOGNIZER | {"erase"}  # the core envelope's operations (request.v2.json)


@dataclass
class Job:
    """What a handler works from."""

    facts: Mapping[str, Any]
    decision: Decision
    info: RecognizerInfo
    gallery: Any
    consent_record: str | None
    top_k: int
    decoded: Decoded | None = None
    with_reference: bool = False

    @property
    def subject_id(self) -> Any:
        subject = self.facts.get("subject")
        return subject.get("id") if isinstance(subject, Mapping) else None

    def first_embedding(self) -> np.ndarray | None:
        assert self.decoded is not None
        return self.decoded.embeddings[0] if self.decoded.embeddings else None


def erase(job: Job) -> Result:
    if job.gallery is None or not job.subject_id:
        raise Refused("refused", "erase needs a gallery and `subject.id`")
    return EraseResult(int(job.gallery.erase_subject(job.subject_id)))


def detect(job: Job) -> Result:
    assert job.decoded is not None
    return DetectResult(tuple(job.decoded.faces[0]))


def analyze(job: Job) -> Result:
    assert job.decoded is not None
    faces = job.decoded.faces[0]
    return AnalyzeResult(tuple(FaceAttributes(f, a) for f, a in zip(faces, job.decoded.attributes)))


def verify(job: Job) -> Result:
    info, vector = job.info, job.first_embedding()
    if vector is None:
        return VerifyResult(False, None, info.threshold, info.metric, "no face found")
    if job.with_reference:
        assert job.decoded is not None
        reference = job.decoded.embeddings[1] if len(job.decoded.embeddings) > 1 else None
        if reference is None:
            return VerifyResult(False, None, info.threshold, info.metric, "no face in the reference image")
        score = float(np.dot(vector, reference)) if info.metric == "cosine" else float(np.linalg.norm(vector - reference))
        same = score > info.threshold if info.metric == "cosine" else score < info.threshold
        return VerifyResult(same, score, info.threshold, info.metric)
    if job.gallery is None or not job.subject_id:
        raise Refused("refused", "verify needs a `reference` image, or a gallery and `subject.id`")
    same, score = job.gallery.verify(job.subject_id, vector, threshold=info.threshold, metric=info.metric)
    return VerifyResult(bool(same), None if score is None else float(score), info.threshold, info.metric)


def identify(job: Job) -> Result:
    vector = job.first_embedding()
    if job.gallery is None:
        raise Refused("refused", "`identify` needs a template gallery")
    if vector is None:
        return IdentifyResult((), "no face found")
    info = job.info
    matches = job.gallery.identify(vector, k=job.top_k, threshold=info.threshold, metric=info.metric, model_id=info.id)
    return IdentifyResult(tuple(Match(str(m.subject_id), float(m.score)) for m in matches))


def enroll(job: Job) -> Result:
    assert job.decoded is not None
    if job.gallery is None:
        raise Refused("refused", "`enroll` needs a template gallery")
    faces = job.decoded.faces[0]
    if not faces:
        raise Refused("no_face", "no face found in the image")
    if len(faces) != 1:
        raise Refused("refused", f"enroll needs exactly one face in the image, found {len(faces)}")
    vector = job.first_embedding()
    if vector is None:
        raise Refused("recognizer_malformed", f"recognizer `{job.info.id}` gave no embedding for the face")
    subject_id = job.subject_id
    if not subject_id:
        raise Refused("refused", "enroll needs `subject.id`")
    types = {o["type"]: o for o in job.decision.obligations}
    storage = job.facts.get("storage", {})
    location = storage.get("location", "server")
    if "store_on_device_only" in types and location != "on_device":
        raise Refused("refused", f"obligation store_on_device_only: template may not go to `{location}` storage")
    days = types.get("retention_max_days", {}).get("days")
    asked = storage.get("retention_days")
    if asked is not None:
        days = asked if days is None else min(days, asked)
    if not days:
        raise Refused("refused", "enroll needs a retention period: `storage.retention_days` or a `retention_max_days` obligation")
    tid = job.gallery.enroll(subject_id, vector, purpose=job.facts["purpose"], consent_id=job.consent_record,
                             retention_days=days, location=location, model_id=job.info.id, decision_id=job.decision.decision_id,
                             consent_facts=None if job.consent_record else job.facts.get("consent"))  # request-stated consent is recorded
    return EnrollResult(str(tid), subject_id, days, location)


HANDLERS: dict[str, Callable[[Job], Result]] = {
    "erase": erase, "detect": detect, "analyze": analyze, "verify": verify, "identify": identify, "enroll": enroll,
}
