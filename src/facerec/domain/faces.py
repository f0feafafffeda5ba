"""The face pipeline shared by enrollment, recognition and verification.

decoded image → detect → choose the face → quality gate → liveness gate → embed. Each step records
its time. Blocking: runs in the inference executor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from facerec.domain.detection import DetectionService, DetectOptions
from facerec.domain.timing import StageTimer
from facerec.errors import FaceRejectedError, ServiceUnavailableError
from facerec.inference.base import FaceEmbedder, LivenessModel
from facerec.inference.images import DecodedImage
from facerec.inference.liveness.minifasnet import context_ratio
from facerec.inference.manager import ModelManager
from facerec.inference.quality import QualityReport, assess
from facerec.inference.types import ModelTask
from facerec.values import BBox, Detection

# The largest face is "clearly dominant" when the next one is at most this fraction of its area.
DOMINANCE_RATIO = 0.5
# When choosing the one face of an image, confident detections win over large doubtful ones
# (a patterned shirt can score 0.54 and be larger than the real face).
CONFIDENT_SCORE = 0.9


class ProcessingMode(StrEnum):
    """How much work to spend on one face (documented in the README).

    - ``fast``: no quality bar, single pass.
    - ``balanced`` (default): quality bar for enrollment, single pass.
    - ``accurate``: quality bar, and the embedding is the mean of the face and its mirror image.
    """

    FAST = "fast"
    BALANCED = "balanced"
    ACCURATE = "accurate"


@dataclass(frozen=True)
class FaceOptions:
    detector: str | None = "auto"
    embedder: str | None = "auto"
    mode: ProcessingMode = ProcessingMode.BALANCED
    quality_bar: bool = False  # reject faces with quality reasons (enrollment)
    min_quality: float = 0.0  # reject faces whose score is below this (0 = off)
    check_liveness: bool = False
    liveness_threshold: float | None = None  # None: the model's default


@dataclass(frozen=True)
class LivenessVerdict:
    is_live: bool
    live_score: float
    threshold: float
    model: str
    per_model: dict[str, float]
    # None, or why there is no trustworthy verdict ("insufficient_context": a tight face crop).
    reason: str | None = None


@dataclass(frozen=True)
class FaceProbe:
    """One face ready for the gallery: where it is, how good it is, and its embedding."""

    detection: Detection
    quality: QualityReport
    embedding: NDArray[np.float32]
    embedder: str
    space: str
    detector: str
    liveness: LivenessVerdict | None
    image_sha256: str


def confident_by_size(faces: list[Detection]) -> list[Detection]:
    """Faces scoring at least :data:`CONFIDENT_SCORE` (all faces when none does), largest first."""
    confident = [f for f in faces if f.score >= CONFIDENT_SCORE] or faces
    return sorted(confident, key=lambda f: f.bbox.area, reverse=True)


@dataclass(frozen=True)
class LivenessCheck:
    image: DecodedImage
    faces: list[Detection]
    verdicts: list[LivenessVerdict]
    model: str
    detector: str


def image_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FacePipeline:
    def __init__(
        self,
        models: ModelManager,
        detection: DetectionService,
        liveness_threshold: float,
        min_context_ratio: float = 1.5,
    ) -> None:
        self._models = models
        self._detection = detection
        self.liveness_threshold = liveness_threshold
        self.min_context_ratio = min_context_ratio

    def detector_name(self, name: str | None) -> str:
        return self._detection.resolve(name)

    def embedder_name(self, name: str | None) -> str:
        return self._models.resolve(ModelTask.EMBEDDING, name)

    def embedder(self, name: str | None) -> FaceEmbedder:
        model = self._models.peek(self.embedder_name(name))
        if not isinstance(model, FaceEmbedder):  # pragma: no cover - registry guarantees it
            raise ServiceUnavailableError("embedder misconfigured", code="model_misconfigured")
        return model

    def liveness_name(self) -> str:
        try:
            return self._models.resolve(ModelTask.LIVENESS, "auto")
        except Exception as exc:
            reason = str(getattr(exc, "message", exc))
            raise ServiceUnavailableError(
                "liveness checking is unavailable: " + reason,
                code="liveness_unavailable",
                reason=reason,
            ) from exc

    def probe(
        self, data: bytes, options: FaceOptions, timer: StageTimer, digest: str | None = None
    ) -> FaceProbe:
        """The one usable face of an image, or a FaceRejectedError saying why there is none.
        ``digest``: the image's SHA-256 when the caller has it already."""
        embedder = self.embedder_name(options.embedder)
        image = self._detection.decode(data, timer)
        detector, faces = self._detection.detect_faces(
            image.pixels, DetectOptions(model_name=options.detector), timer
        )
        face = self.choose_face(faces)
        digest = digest or image_digest(data)
        return self._finish(image, digest, face, detector, embedder, options, timer)

    def probe_all(
        self, data: bytes, options: FaceOptions, timer: StageTimer, max_faces: int
    ) -> list[FaceProbe]:
        """Every face of an image (group photos); low-quality faces are kept, marked by quality."""
        embedder = self.embedder_name(options.embedder)
        image = self._detection.decode(data, timer)
        detector, faces = self._detection.detect_faces(
            image.pixels, DetectOptions(model_name=options.detector, max_faces=max_faces), timer
        )
        if not faces:
            return []
        digest = image_digest(data)
        with timer.stage("quality"):
            reports = [assess(image.pixels, f, self._detection.bar) for f in faces]
        vectors = self._embed(image, faces, embedder, options.mode, timer)
        liveness = self._liveness(image, faces, options, timer) if options.check_liveness else None
        space_id = self.embedder(embedder).space
        return [
            FaceProbe(
                detection=face,
                quality=reports[i],
                embedding=vectors[i],
                embedder=embedder,
                space=space_id,
                detector=detector,
                liveness=liveness[i] if liveness else None,
                image_sha256=digest,
            )
            for i, face in enumerate(faces)
        ]

    @staticmethod
    def choose_face(faces: list[Detection]) -> Detection:
        if not faces:
            raise FaceRejectedError("no face was found in the image", code="no_face")
        ordered = confident_by_size(faces)
        if len(ordered) > 1 and ordered[1].bbox.area > DOMINANCE_RATIO * ordered[0].bbox.area:
            raise FaceRejectedError(
                f"{len(ordered)} faces of similar size were found; send an image of one person",
                code="multiple_faces",
                faces=len(ordered),
            )
        return ordered[0]

    def _finish(
        self,
        image: DecodedImage,
        digest: str,
        face: Detection,
        detector: str,
        embedder: str,
        options: FaceOptions,
        timer: StageTimer,
    ) -> FaceProbe:
        with timer.stage("quality"):
            quality = assess(image.pixels, face, self._detection.bar)
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
        liveness = None
        if options.check_liveness:
            liveness = self._liveness(image, [face], options, timer)[0]
            if liveness.reason == "insufficient_context":
                raise FaceRejectedError(
                    "liveness cannot be judged on a tight face crop: send the whole camera frame",
                    code="liveness_insufficient_context",
                    live_score=round(liveness.live_score, 4),
                    model=liveness.model,
                )
            if not liveness.is_live:
                raise FaceRejectedError(
                    "the face looks like a spoof (photo, screen or mask)",
                    code="spoof_detected",
                    live_score=round(liveness.live_score, 4),
                    threshold=liveness.threshold,
                    model=liveness.model,
                )
        vector = self._embed(image, [face], embedder, options.mode, timer)[0]
        return FaceProbe(
            detection=face,
            quality=quality,
            embedding=vector,
            embedder=embedder,
            space=self.embedder(embedder).space,
            detector=detector,
            liveness=liveness,
            image_sha256=digest,
        )

    def _embed(
        self,
        image: DecodedImage,
        faces: list[Detection],
        embedder: str,
        mode: ProcessingMode,
        timer: StageTimer,
    ) -> NDArray[np.float32]:
        with self._models.use(embedder, FaceEmbedder) as model, timer.stage("embed", embedder):
            vectors = model.embed(image.pixels, faces)
            if mode is ProcessingMode.ACCURATE:
                mirrored = np.ascontiguousarray(image.pixels[:, ::-1])
                width = image.pixels.shape[1]
                flipped = [mirror_detection(f, width) for f in faces]
                vectors = (vectors + model.embed(mirrored, flipped)) / 2.0
        return np.asarray(vectors, dtype=np.float32)

    def liveness_of(
        self,
        image: DecodedImage,
        faces: list[Detection],
        threshold: float | None,
        timer: StageTimer,
    ) -> list[LivenessVerdict]:
        options = FaceOptions(check_liveness=True, liveness_threshold=threshold)
        return self._liveness(image, faces, options, timer) if faces else []

    def check_liveness(
        self, data: bytes, options: DetectOptions, threshold: float | None, timer: StageTimer
    ) -> LivenessCheck:
        """Liveness of every face in an image (the anti-spoofing endpoint)."""
        model = self.liveness_name()  # unavailable is the first thing to say
        self._detection.resolve(options.model_name)
        image = self._detection.decode(data, timer)
        detector, faces = self._detection.detect_faces(image.pixels, options, timer)
        verdicts = (
            self._liveness(
                image, faces, FaceOptions(check_liveness=True, liveness_threshold=threshold), timer
            )
            if faces
            else []
        )
        return LivenessCheck(
            image=image, faces=faces, verdicts=verdicts, model=model, detector=detector
        )

    def _liveness(
        self, image: DecodedImage, faces: list[Detection], options: FaceOptions, timer: StageTimer
    ) -> list[LivenessVerdict]:
        name = self.liveness_name()
        threshold = options.liveness_threshold
        if threshold is None:
            threshold = self.liveness_threshold
        with self._models.use(name, LivenessModel) as model, timer.stage("liveness", name):
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
                    model=name,
                    per_model=dict(s.per_model),
                    reason="insufficient_context" if tight else None,
                )
            )
        return verdicts


def mirror_detection(face: Detection, width: int) -> Detection:
    """The same face in the horizontally mirrored image (left/right landmarks swap roles)."""
    box = face.bbox
    mirrored = BBox(width - box.x2, box.y1, width - box.x1, box.y2)
    marks = None
    if face.landmarks is not None:
        points = face.landmarks.copy()
        points[:, 0] = width - points[:, 0]
        marks = points[[1, 0, 2, 4, 3]].astype(np.float32)
    return Detection(mirrored, face.score, marks)
