"""Detection service: decoded image → faces with quality, filtered and ordered.

Resize policy: the detector sees the image downscaled so its longer side is at most
``limits.detect_max_side`` pixels (RetinaFace's anchors cover faces of 16-512 px, and a 4000 px
photo would cost 60x the time for no gain), or at most the network's input side for detectors that
letterbox every image into a fixed input (SCRFD, YOLO, YuNet: 640 px), so a photo is decoded and
resized once, to what the network sees; boxes and landmarks are mapped back to the original
image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facerec.config import LimitSettings
from facerec.domain.timing import StageTimer
from facerec.inference.base import FaceDetector
from facerec.inference.detectors.decoding import resize_for_detector
from facerec.inference.images import DecodedImage, decode_image
from facerec.inference.manager import ModelManager
from facerec.inference.quality import QualityBar, QualityReport, assess
from facerec.inference.types import ImageBGR, ModelTask
from facerec.values import BBox, Detection


@dataclass(frozen=True)
class DetectOptions:
    model_name: str | None = "auto"
    conf_threshold: float = 0.5
    iou_threshold: float = 0.4
    max_faces: int = 50
    min_quality: float = 0.0
    # Look only inside this box (the image's pixels), at the scale the whole image is seen at.
    region: BBox | None = None


@dataclass(frozen=True)
class DetectedFace:
    detection: Detection
    quality: QualityReport


@dataclass(frozen=True)
class DetectionResult:
    faces: list[DetectedFace]
    filtered_low_quality: int
    model_used: str
    image: DecodedImage


def scale_detection(face: Detection, factor: float, factor_y: float | None = None) -> Detection:
    """The detection in an image ``factor`` (and ``factor_y`` vertically) times larger."""
    fy = factor if factor_y is None else factor_y
    box = face.bbox
    landmarks = None
    if face.landmarks is not None:
        landmarks = (face.landmarks * np.array([factor, fy], np.float32)).astype(np.float32)
    scaled = BBox(box.x1 * factor, box.y1 * fy, box.x2 * factor, box.y2 * fy)
    return replace(face, bbox=scaled, landmarks=landmarks)


CROP_GRID = 32  # pixels at the detector's scale: the largest stride of the detectors' anchors


def detect_downscaled(
    detector: FaceDetector, image: ImageBGR, max_side: int, options: DetectOptions
) -> list[Detection]:
    """The resize policy: detect on a copy whose longer side is at most ``max_side``, then map
    boxes and landmarks back to (and clip them to) the original image."""
    height, width = image.shape[:2]
    factor = min(1.0, max_side / max(height, width))
    small = image
    x0 = y0 = 0
    if options.region is not None:  # a crop of the image, seen as the whole image would be
        box = options.region.clipped(width, height)
        # The crop starts on the detector's coarsest grid (stride 32 at its scale), so its
        # anchors, and its pixels after the resize, fall where the whole image's do.
        x0 = int(CROP_GRID * (box.x1 * factor // CROP_GRID) / factor)
        y0 = int(CROP_GRID * (box.y1 * factor // CROP_GRID) / factor)
        x1, y1 = max(x0 + 1, int(np.ceil(box.x2))), max(y0 + 1, int(np.ceil(box.y2)))
        small = image[y0:y1, x0:x1]
    if factor < 1.0:
        crop_h, crop_w = small.shape[:2]
        size = (max(1, round(crop_w * factor)), max(1, round(crop_h * factor)))
        small = resize_for_detector(small, *size)
    faces = detector.detect(
        small,
        conf_threshold=options.conf_threshold,
        iou_threshold=options.iou_threshold,
        max_faces=options.max_faces,
    )
    if factor < 1.0:
        faces = [scale_detection(f, 1.0 / factor) for f in faces]
    if x0 or y0:
        faces = [shift_detection(f, x0, y0) for f in faces]
    return [replace(f, bbox=f.bbox.clipped(width, height)) for f in faces]


def shift_detection(face: Detection, dx: float, dy: float) -> Detection:
    """The detection moved by (``dx``, ``dy``) pixels: from a crop to the image it came from."""
    box = face.bbox
    landmarks = None
    if face.landmarks is not None:
        landmarks = (face.landmarks + np.array([dx, dy], np.float32)).astype(np.float32)
    moved = BBox(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)
    return replace(face, bbox=moved, landmarks=landmarks)


class DetectionService:
    def __init__(
        self, models: ModelManager, limits: LimitSettings, bar: QualityBar | None = None
    ) -> None:
        self._models = models
        self._limits = limits
        self.bar = bar or QualityBar()

    def decode(
        self,
        data: bytes,
        timer: StageTimer,
        *,
        reduced: bool = False,
        detector: str | None = None,
        at_least: int | None = None,
    ) -> DecodedImage:
        """``reduced``: only faces' positions are needed (detection, by ``detector``), so a large
        JPEG may be decoded at reduced scale. ``at_least``: a decode whose longer side is at
        least this (the detail a face's chip needs); neither: the full resolution."""
        reduce_to = self.detect_side(detector) if reduced else at_least
        with timer.stage("decode"):
            return decode_image(data, self._limits, reduce_to=reduce_to)

    def resolve(self, model_name: str | None) -> str:
        return self._models.resolve(ModelTask.DETECTION, model_name)

    def detect_side(self, model_name: str | None) -> int:
        """The longest side the detector sees: ``limits.detect_max_side``, or the network's own
        input side when that is smaller (the pack detectors letterbox into 640 px)."""
        with self._models.use(self.resolve(model_name), FaceDetector) as detector:
            return detector_side(detector, self._limits)

    def detect_faces(
        self, image: ImageBGR, options: DetectOptions, timer: StageTimer
    ) -> tuple[str, list[Detection]]:
        """Raw detections in original-image pixels, best first (no quality filtering)."""
        name = self.resolve(options.model_name)
        with self._models.use(name, FaceDetector) as detector, timer.stage("detect", name):
            faces = detect_downscaled(
                detector, image, detector_side(detector, self._limits), options
            )
        return name, faces

    def detect(
        self, data: bytes, options: DetectOptions, timer: StageTimer, *, reduced: bool = True
    ) -> DetectionResult:
        """Faces of an encoded image in its own pixels. ``reduced=False`` keeps the decoded
        pixels at full resolution (for callers that crop faces from ``result.image``)."""
        self.resolve(options.model_name)  # an unknown model is the client's first problem
        image = self.decode(data, timer, reduced=reduced, detector=options.model_name)
        return self.detect_decoded(image, options, timer)

    def detect_decoded(
        self, image: DecodedImage, options: DetectOptions, timer: StageTimer
    ) -> DetectionResult:
        sx, sy = image.scale_x, image.scale_y
        if options.region is not None and (sx != 1.0 or sy != 1.0):
            box = options.region  # in the photo's pixels: in the decode's
            region = BBox(box.x1 / sx, box.y1 / sy, box.x2 / sx, box.y2 / sy)
            options = replace(options, region=region)
        name, faces = self.detect_faces(image.pixels, options, timer)
        with timer.stage("quality"):
            reports = [assess(image.pixels, f, self.bar, pixel_scale=min(sx, sy)) for f in faces]
        if sx != 1.0 or sy != 1.0:  # a reduced decode: back to the original image's pixels
            faces = [scale_detection(f, sx, sy) for f in faces]
            faces = [replace(f, bbox=f.bbox.clipped(image.width, image.height)) for f in faces]
        assessed = [DetectedFace(f, r) for f, r in zip(faces, reports, strict=True)]
        kept = [f for f in assessed if f.quality.score >= options.min_quality]
        return DetectionResult(
            faces=kept,
            filtered_low_quality=len(assessed) - len(kept),
            model_used=name,
            image=image,
        )


def detector_side(detector: FaceDetector, limits: LimitSettings) -> int:
    """The longest side ``detector`` sees (:meth:`DetectionService.detect_side`)."""
    own = detector.input_side()
    return limits.detect_max_side if own is None else min(own, limits.detect_max_side)
