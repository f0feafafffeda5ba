"""Domain values → API schemas (one place, so every route shapes faces the same way)."""

from __future__ import annotations

from facerec.api.schemas.common import BoundingBox, ImageInfo, Landmarks, Point, QualityOut
from facerec.api.schemas.detection import DetectedFaceOut
from facerec.domain.detection import DetectedFace
from facerec.inference.images import DecodedImage
from facerec.inference.quality import QualityReport
from facerec.inference.types import BBox, Detection


def bbox_out(box: BBox) -> BoundingBox:
    return BoundingBox(
        x1=round(box.x1, 2),
        y1=round(box.y1, 2),
        x2=round(box.x2, 2),
        y2=round(box.y2, 2),
        width=round(box.width, 2),
        height=round(box.height, 2),
    )


def landmarks_out(face: Detection) -> Landmarks | None:
    if face.landmarks is None:
        return None
    points = [Point(x=round(float(x), 2), y=round(float(y), 2)) for x, y in face.landmarks]
    return Landmarks(
        left_eye=points[0],
        right_eye=points[1],
        nose=points[2],
        mouth_left=points[3],
        mouth_right=points[4],
    )


def quality_out(report: QualityReport) -> QualityOut:
    return QualityOut(score=report.score, factors=report.factors, reasons=list(report.reasons))


def face_out(face: DetectedFace, with_landmarks: bool) -> DetectedFaceOut:
    return DetectedFaceOut(
        bbox=bbox_out(face.detection.bbox),
        confidence=round(face.detection.score, 4),
        landmarks=landmarks_out(face.detection) if with_landmarks else None,
        quality_score=face.quality.score,
        quality=quality_out(face.quality),
    )


def image_info(image: DecodedImage) -> ImageInfo:
    return ImageInfo(
        width=image.width, height=image.height, channels=image.channels, format=image.format
    )
