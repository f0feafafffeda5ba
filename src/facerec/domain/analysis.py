"""The analysis core: one blocking step from image bytes to analysed faces.

``Analyzer.analyse(data, options)``: decode once → detect once → quality of every face → choose
the faces (all, the subject, or the enrollment subject; :mod:`facerec.domain.selection`) → quality
and liveness gates → liveness of the kept faces in one call → embed the kept faces in one batched
call. Every endpoint that looks at faces goes through it; each step records its time. Blocking:
runs in the inference executor.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from facerec.domain.detection import DetectedFace, DetectionService, DetectOptions
from facerec.domain.probes import (
    Analysis,
    AnalysisOptions,
    FaceChoice,
    FaceProbe,
    ImageMeta,
    LivenessVerdict,
    ProcessingMode,
    image_digest,
)
from facerec.domain.selection import competing_faces, rank_faces
from facerec.domain.timing import StageTimer
from facerec.errors import FaceRejectedError
from facerec.inference.base import AlignedChip, FaceEmbedder, LivenessModel
from facerec.inference.images import DecodedImage
from facerec.inference.liveness.minifasnet import context_ratio
from facerec.inference.manager import ModelManager
from facerec.values import BBox, Detection

MIRROR_SUFFIX = "+mirror"


class Analyzer:
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

    def analyse(
        self, data: bytes, options: AnalysisOptions, timer: StageTimer, digest: str | None = None
    ) -> Analysis:
        """The faces of an encoded image, as ``options`` asks; ``digest``: its SHA-256 when the
        caller has it already. Raises :class:`FaceRejectedError` when a subject/enroll photo has
        no usable face."""
        reduced = options.reduced_decode and options.embedder is None and not options.liveness
        image = self._detection.decode(data, timer, reduced=reduced)
        detect = DetectOptions(
            model_name=options.detector,
            conf_threshold=options.conf_threshold,
            iou_threshold=options.iou_threshold,
            max_faces=options.max_faces,
            min_quality=options.min_quality if options.choice is FaceChoice.ALL else 0.0,
        )
        found = self._detection.detect_decoded(image, detect, timer)
        faces_in_image = len(found.faces) + found.filtered_low_quality
        if options.choice is FaceChoice.ALL:
            probes = [FaceProbe(f.detection, f.quality, index=i) for i, f in enumerate(found.faces)]
        else:
            probes = [self._subject(found.faces, image, options)]
        if options.liveness and probes:
            probes = self._with_liveness(image, probes, options, timer)
        space = None
        if options.embedder and probes:
            vectors, space, chips = self._embed(
                image, [p.detection for p in probes], options, timer
            )
            probes = [
                replace(p, embedding=v, chip=c)
                for p, v, c in zip(probes, vectors, chips, strict=True)
            ]
        elif options.embedder:
            space = self.embedder_space(options.embedder, options.mode)
        return Analysis(
            probes=probes,
            image=ImageMeta.of(image),
            image_sha256=digest or image_digest(data),
            detector=found.model_used,
            embedder=options.embedder,
            space=space,
            faces_in_image=faces_in_image,
            filtered_low_quality=found.filtered_low_quality,
        )

    def embedder_space(self, name: str, mode: ProcessingMode) -> str:
        """The space that ``name`` embeds into in ``mode`` (no model is loaded)."""
        model = self._models.peek(name)
        if not isinstance(model, FaceEmbedder):  # pragma: no cover - resolved by task
            raise TypeError(f"{name!r} is not an embedder")
        mirrored = mode is ProcessingMode.ACCURATE and not model.mirror_averaged
        return model.space + (MIRROR_SUFFIX if mirrored else "")

    def _subject(
        self, faces: list[DetectedFace], image: DecodedImage, options: AnalysisOptions
    ) -> FaceProbe:
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
        return FaceProbe(
            subject.detection, quality, index=subject.index, prominence=subject.prominence
        )

    def _with_liveness(
        self,
        image: DecodedImage,
        probes: list[FaceProbe],
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> list[FaceProbe]:
        verdicts = self.liveness(
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

    def liveness(
        self,
        image: DecodedImage,
        faces: list[Detection],
        model_name: str,
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> list[LivenessVerdict]:
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

    def _embed(
        self,
        image: DecodedImage,
        faces: list[Detection],
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> tuple[NDArray[np.float32], str, list[AlignedChip | None]]:
        name = options.embedder or ""
        chips: list[AlignedChip | None] = [None] * len(faces)
        with self._models.use(name, FaceEmbedder) as model, timer.stage("embed", name):
            vectors = model.embed(image.pixels, faces)
            if options.keep_chips:
                chips = model.chips_of(image.pixels, faces)
            space = model.space
            if options.mode is ProcessingMode.ACCURATE and not model.mirror_averaged:
                mirrored = np.ascontiguousarray(image.pixels[:, ::-1])
                width = image.pixels.shape[1]
                flipped = [mirror_detection(f, width) for f in faces]
                vectors = (vectors + model.embed(mirrored, flipped)) / 2.0
                # Mirror-averaged vectors are made differently: they live in their own space.
                space = f"{space}{MIRROR_SUFFIX}"
        return np.asarray(vectors, dtype=np.float32), space, chips


def _face_brief(face: Detection, prominence: float) -> dict[str, object]:
    box = face.bbox
    return {
        "bbox": [round(box.x1, 1), round(box.y1, 1), round(box.x2, 1), round(box.y2, 1)],
        "confidence": round(face.score, 4),
        "prominence": round(prominence, 4),
    }


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
