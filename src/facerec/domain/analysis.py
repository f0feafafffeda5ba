"""The analysis core: one blocking step from image bytes to analysed faces.

``Analyzer.analyse(data, options)``: decode once → detect once → quality of every face → choose
the faces (all, the subject, or the enrollment subject; :mod:`facerec.domain.selection`) → quality
and liveness gates → liveness of the kept faces in one call → embed the kept faces in one batched
call. Every endpoint that looks at faces goes through it; each step records its time. Blocking:
runs in the inference executor. The refusals of the subject and liveness steps are written in
:mod:`facerec.domain.analysis_gates`.

Decoding follows the faces, not the megapixels: without liveness, a large JPEG is decoded once at
the scale detection needs (:func:`~facerec.inference.images.decode_image` ``reduce_to``), and the
chips are cut from that decode whenever it holds at least the detail the embedder's chip can use
(:data:`CHIP_DETAIL`). When a face to embed is too small for that, the photo is decoded again at
the scale its chip needs (the full resolution at most); when the reduced decode gets a face
refused, at full resolution, and analysed as before.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from facerec.domain.analysis_gates import LivenessGate, subject_probe
from facerec.domain.detection import (
    DetectedFace,
    DetectionResult,
    DetectionService,
    DetectOptions,
    scale_detection,
)
from facerec.domain.probes import (
    Analysis,
    AnalysisOptions,
    FaceChoice,
    FaceProbe,
    ImageMeta,
    ProcessingMode,
    image_digest,
)
from facerec.domain.timing import StageTimer
from facerec.errors import FaceRejectedError
from facerec.inference.align import chip_scale, mirrored_faces
from facerec.inference.base import AlignedChip, FaceEmbedder
from facerec.inference.images import DecodedImage
from facerec.inference.manager import ModelManager
from facerec.inference.quality import assess
from facerec.values import MIRROR_SUFFIX, Detection

__all__ = ["CHIP_DETAIL", "Analyzer"]

# A reduced decode serves a face's chip when the chip takes at most this many chip pixels per
# decoded pixel: ``warp_chip`` area-averages any finer image down to this sampling anyway.
CHIP_DETAIL = 0.5


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
        self._liveness = LivenessGate(models, liveness_threshold, min_context_ratio)

    def analyse(
        self, data: bytes, options: AnalysisOptions, timer: StageTimer, digest: str | None = None
    ) -> Analysis:
        """The faces of an encoded image, as ``options`` asks; ``digest``: its SHA-256 when the
        caller has it already. Raises :class:`FaceRejectedError` when a subject/enroll photo has
        no usable face."""
        reduced = not options.liveness and (options.reduced_decode or bool(options.embedder))
        image = self._detection.decode(data, timer, reduced=reduced, detector=options.detector)
        # Embedding from a reduced decode must give what the full photo gives, or it is redone.
        if options.embedder is not None and _is_reduced(image):
            reduced_found: DetectionResult | None = None
            side: int | None = None  # of the decode the chips need; None: the full photo
            try:
                found, probes = self._faces(image, options, timer)
                side = self._chip_side(image, probes, options.embedder)
                reduced_found = found
            except FaceRejectedError as exc:
                if exc.code == "no_face":  # detection runs at its own scale anyway
                    raise
            if side is None or side > _longer_side(image):
                image = self._detection.decode(data, timer, at_least=side)
                if reduced_found is not None and options.choice is not FaceChoice.ALL:
                    # Detection ran at its own scale: only quality needs the finer pixels.
                    found, probes = self._reassessed(image, reduced_found, options, timer)
                else:
                    found, probes = self._faces(image, options, timer)
        else:
            found, probes = self._faces(image, options, timer)
        faces_in_image = len(found.faces) + found.filtered_low_quality
        if options.liveness and probes:
            probes = self._liveness.apply(image, probes, options, timer)
        space = None
        if options.embedder and probes:
            in_pixels = [_in_pixels(p.detection, image) for p in probes]
            vectors, space, chips = self._embed(image, in_pixels, options, timer)
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

    def _faces(
        self, image: DecodedImage, options: AnalysisOptions, timer: StageTimer
    ) -> tuple[DetectionResult, list[FaceProbe]]:
        """Detection, quality and the faces ``options.choice`` keeps, in the photo's pixels."""
        detect = DetectOptions(
            model_name=options.detector,
            conf_threshold=options.conf_threshold,
            iou_threshold=options.iou_threshold,
            max_faces=options.max_faces,
            min_quality=options.min_quality if options.choice is FaceChoice.ALL else 0.0,
            region=options.region,
        )
        found = self._detection.detect_decoded(image, detect, timer)
        if options.choice is FaceChoice.ALL:
            probes = [FaceProbe(f.detection, f.quality, index=i) for i, f in enumerate(found.faces)]
        else:
            probes = [subject_probe(found.faces, image, options)]
        return found, probes

    def _reassessed(
        self,
        image: DecodedImage,
        found: DetectionResult,
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> tuple[DetectionResult, list[FaceProbe]]:
        """The faces found on a reduced decode, their quality judged on the full ``image``."""
        bar = self._detection.bar
        scale = min(image.scale_x, image.scale_y)
        with timer.stage("quality"):
            faces = [
                DetectedFace(
                    f.detection,
                    assess(image.pixels, _in_pixels(f.detection, image), bar, pixel_scale=scale),
                )
                for f in found.faces
            ]
        return replace(found, faces=faces, image=image), [subject_probe(faces, image, options)]

    def _chip_side(self, image: DecodedImage, probes: list[FaceProbe], name: str) -> int | None:
        """The longer side of a decode that holds all the detail the embedder's chips of
        ``probes`` can use (:data:`CHIP_DETAIL`): at most ``image``'s when its pixels do. None:
        only the full photo will do (a face without landmarks, or dlib's own shape
        predictor)."""
        model = self._models.peek(name)
        if not isinstance(model, FaceEmbedder):  # pragma: no cover - resolved by task
            raise TypeError(f"{name!r} is not an embedder")
        if getattr(model, "alignment", "landmarks") != "landmarks":
            return None
        _, template = model.chip_geometry()
        finer = 0.0  # how many times finer than ``image`` the decode must be
        for probe in probes:
            face = _in_pixels(probe.detection, image)
            if face.landmarks is None:
                return None
            finer = max(finer, chip_scale(face.landmarks, template) / CHIP_DETAIL)
        return math.ceil(_longer_side(image) * finer)

    def embedder_space(self, name: str, mode: ProcessingMode) -> str:
        """The space that ``name`` embeds into in ``mode`` (no model is loaded)."""
        model = self._models.peek(name)
        if not isinstance(model, FaceEmbedder):  # pragma: no cover - resolved by task
            raise TypeError(f"{name!r} is not an embedder")
        mirrored = mode is ProcessingMode.ACCURATE and not model.mirror_averaged
        return model.space + (MIRROR_SUFFIX if mirrored else "")

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
                mirrored, flipped = mirrored_faces(image.pixels, faces)
                vectors = (vectors + model.embed(mirrored, flipped)) / 2.0
                # Mirror-averaged vectors are made differently: they live in their own space.
                space = f"{space}{MIRROR_SUFFIX}"
        return np.asarray(vectors, dtype=np.float32), space, chips


def _longer_side(image: DecodedImage) -> int:
    return int(max(image.pixels.shape[:2]))


def _is_reduced(image: DecodedImage) -> bool:
    return image.scale_x != 1.0 or image.scale_y != 1.0


def _in_pixels(face: Detection, image: DecodedImage) -> Detection:
    """``face`` (in the photo's pixels) in the pixels of its decode."""
    if not _is_reduced(image):
        return face
    return scale_detection(face, 1.0 / image.scale_x, 1.0 / image.scale_y)
