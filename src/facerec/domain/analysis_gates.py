"""Where analysis refuses a photo's subject: choosing the subject (none found, a competing face
on an enrollment photo, low quality) and judging liveness (a spoof, a crop too tight to judge).

Apart from :mod:`facerec.domain.analysis`, which decides what to decode, detect and embed, because
these are the rules that turn a face into a ``FaceRejectedError`` with its stable code; the
analyser applies them at their step.
"""

from __future__ import annotations

from dataclasses import replace

from facerec.domain.detection import DetectedFace
from facerec.domain.probes import (
    AnalysisOptions,
    FaceChoice,
    FaceProbe,
    LivenessVerdict,
    ProcessingMode,
)
from facerec.domain.selection import competing_faces, rank_faces
from facerec.domain.timing import StageTimer
from facerec.errors import FaceRejectedError
from facerec.inference.base import LivenessModel
from facerec.inference.images import DecodedImage
from facerec.inference.liveness.minifasnet import context_ratio
from facerec.inference.manager import ModelManager
from facerec.values import Detection


def subject_probe(
    faces: list[DetectedFace], image: DecodedImage, options: AnalysisOptions
) -> FaceProbe:
    """The subject of a photo (``FaceChoice.SUBJECT``/``ENROLL``), refused when there is none,
    when another face competes with it on an enrollment photo, or when its quality is not
    enough."""
    if not faces:
        raise FaceRejectedError("no face was found in the image", code="no_face")
    ranked = rank_faces(
        [f.detection for f in faces], [f.quality for f in faces], image.width, image.height
    )
    subject = ranked[0]
    if options.choice is FaceChoice.ENROLL:
        competing = competing_faces(ranked)
        if competing:
            raise FaceRejectedError(
                f"{len(competing) + 1} faces compete to be the subject of this photo; "
                "send a photo where one person is clearly the subject",
                code="multiple_faces",
                faces=len(faces),
                competing=[_face_brief(r.detection, r.prominence) for r in competing],
                subject=_face_brief(subject.detection, subject.prominence),
            )
    quality = subject.quality
    if options.mode is not ProcessingMode.FAST:
        if options.quality_bar and quality.reasons:
            raise FaceRejectedError(
                "the face is not good enough: " + ", ".join(quality.reasons),
                code="low_quality",
                reasons=list(quality.reasons),
                quality_score=quality.score,
            )
        if quality.score < options.min_quality:
            raise FaceRejectedError(
                f"face quality {quality.score} is below {options.min_quality}",
                code="low_quality",
                reasons=list(quality.reasons) or ["below_min_quality"],
                quality_score=quality.score,
            )
    return FaceProbe(subject.detection, quality, index=subject.index, prominence=subject.prominence)


def _face_brief(face: Detection, prominence: float) -> dict[str, object]:
    box = face.bbox
    return {
        "bbox": [round(box.x1, 1), round(box.y1, 1), round(box.x2, 1), round(box.y2, 1)],
        "confidence": round(face.score, 4),
        "prominence": round(prominence, 4),
    }


class LivenessGate:
    """Liveness verdicts of faces, and the refusal of a subject that is not live."""

    def __init__(
        self, models: ModelManager, liveness_threshold: float, min_context_ratio: float
    ) -> None:
        self._models = models
        self.liveness_threshold = liveness_threshold
        self.min_context_ratio = min_context_ratio

    def apply(
        self,
        image: DecodedImage,
        probes: list[FaceProbe],
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> list[FaceProbe]:
        """``probes`` with their liveness verdicts; with ``options.gate_liveness`` a subject (not
        ``FaceChoice.ALL``) that is not live, or cannot be judged, is refused."""
        verdicts = self.verdicts(
            image, [p.detection for p in probes], options.liveness or "", options, timer
        )
        gate = options.gate_liveness and options.choice is not FaceChoice.ALL
        if gate:
            verdict = verdicts[0]
            if verdict.reason == "insufficient_context":
                raise FaceRejectedError(
                    "liveness cannot be judged on a tight face crop: send the whole camera frame",
                    code="liveness_insufficient_context",
                    live_score=round(verdict.live_score, 4),
                    model=verdict.model,
                )
            if not verdict.is_live:
                raise FaceRejectedError(
                    "the face looks like a spoof (photo, screen or mask)",
                    code="spoof_detected",
                    live_score=round(verdict.live_score, 4),
                    threshold=verdict.threshold,
                    model=verdict.model,
                )
        return [replace(p, liveness=v) for p, v in zip(probes, verdicts, strict=True)]

    def verdicts(
        self,
        image: DecodedImage,
        faces: list[Detection],
        model_name: str,
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> list[LivenessVerdict]:
        """One verdict per face, at the request's threshold or else the service's; a face whose
        box cannot be enlarged ``min_context_ratio`` times inside the image is never live."""
        threshold = options.liveness_threshold
        if threshold is None:
            threshold = self.liveness_threshold
        with (
            self._models.use(model_name, LivenessModel) as model,
            timer.stage("liveness", model_name),
        ):
            scores = model.score(image.pixels, faces)
        height, width = image.pixels.shape[:2]
        verdicts = []
        for face, s in zip(faces, scores, strict=True):
            tight = context_ratio(face.bbox, width, height) < self.min_context_ratio
            verdicts.append(
                LivenessVerdict(
                    is_live=s.live_score >= threshold and not tight,
                    live_score=s.live_score,
                    threshold=threshold,
                    model=model_name,
                    per_model=dict(s.per_model),
                    reason="insufficient_context" if tight else None,
                )
            )
        return verdicts
