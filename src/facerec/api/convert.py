"""Domain values → API schemas (one place, so every route shapes faces the same way)."""

from __future__ import annotations

from typing import Any

from facerec.api.schemas.common import (
    BoundingBox,
    ImageInfo,
    Landmarks,
    LivenessOut,
    Point,
    QualityOut,
)
from facerec.api.schemas.detection import DetectedFaceOut
from facerec.api.schemas.enrollment import ImageResult, WarningOut
from facerec.api.schemas.persons import CollectionOut, FaceOut, PersonOut
from facerec.api.schemas.recognition import (
    FaceIdentityOut,
    FaceInfo,
    MatchOut,
    OperatingPointOut,
    TagOptionsIn,
)
from facerec.domain.enrollment_values import EnrollmentWarning, ImageOutcome
from facerec.domain.identification import Match
from facerec.domain.open_set import OperatingPoint
from facerec.domain.probes import Analysis, FaceProbe, ImageMeta, LivenessVerdict
from facerec.domain.tagging import FaceTag, TagOptions
from facerec.domain.tenancy import TenantScope
from facerec.errors import FaceRecError
from facerec.inference.quality import QualityReport
from facerec.values import BBox, Collection, Detection, Face, Person


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


def face_out(face: FaceProbe, with_landmarks: bool) -> DetectedFaceOut:
    return DetectedFaceOut(
        bbox=bbox_out(face.detection.bbox),
        confidence=round(face.detection.score, 4),
        landmarks=landmarks_out(face.detection) if with_landmarks else None,
        quality_score=face.quality.score,
        quality=quality_out(face.quality),
        liveness=liveness_out(face.liveness),
    )


def image_info(image: ImageMeta) -> ImageInfo:
    return ImageInfo(
        width=image.width, height=image.height, channels=image.channels, format=image.format
    )


def liveness_out(verdict: LivenessVerdict | None) -> LivenessOut | None:
    if verdict is None:
        return None
    return LivenessOut(
        is_live=verdict.is_live,
        live_score=round(verdict.live_score, 4),
        threshold=verdict.threshold,
        model_used=verdict.model,
        per_model={k: round(v, 4) for k, v in verdict.per_model.items()},
        reason=verdict.reason,
    )


def face_info(analysis: Analysis) -> FaceInfo:
    """The subject of a photo, and how many faces the photo had."""
    probe = analysis.subject
    return FaceInfo(
        bbox=bbox_out(probe.detection.bbox),
        confidence=round(probe.detection.score, 4),
        quality=quality_out(probe.quality),
        liveness=liveness_out(probe.liveness),
        prominence=round(probe.prominence, 4),
        faces_in_image=analysis.faces_in_image,
    )


def person_out(person: Person, scope: TenantScope) -> PersonOut:
    """A stored person as its tenant knows it (ids and collection names without the tenant)."""
    return PersonOut(
        person_id=scope.person_id(person.id),
        person_name=person.name,
        collection=scope.collection_name(person.collection),
        employee_id=person.employee_id,
        department=person.department,
        position=person.position,
        metadata=dict(person.metadata),
        face_count=person.face_count,
        created_at=person.created_at,
        updated_at=person.updated_at,
    )


def match_out(match: Match, scope: TenantScope) -> MatchOut:
    person = match.person
    return MatchOut(
        person_id=scope.person_id(match.person_id) if person else match.person_id,
        person_name=person.name if person else None,
        employee_id=person.employee_id if person else None,
        collection=scope.collection_name(person.collection) if person else None,
        metadata=dict(person.metadata) if person else {},
        face_id=match.face_id,
        similarity=round(match.similarity, 4),
        distance=round(match.distance, 4),
        margin=None if match.margin is None else round(match.margin, 4),
        is_match=match.is_match,
        faces=match.faces,
        nearest_distance=round(match.nearest_distance, 4),
    )


def operating_point_out(point: OperatingPoint, decided_by: str) -> OperatingPointOut:
    """``decided_by``: the decision's (recognize), or ``per_face`` (recognize-all)."""

    def rate(value: float | None) -> float | None:
        return None if value is None else float(f"{value:.4g}")

    return OperatingPointOut(
        rule=point.rule,
        target_fpir=point.target_fpir,
        similarity_threshold=round(point.similarity_threshold, 4),
        distance_threshold=round(point.distance_threshold, 4),
        gallery_size=point.gallery_size,
        comparisons=point.comparisons,
        expected_fpir=rate(point.expected_fpir),
        fmr_at_threshold=rate(point.fmr_at_threshold),
        extrapolated=point.extrapolated,
        capped_at_verification=point.capped_at_verification,
        min_margin=point.min_margin,
        decided_by=decided_by,
        calibration=point.calibration,
    )


def warning_out(warning: EnrollmentWarning, scope: TenantScope) -> WarningOut:
    details = dict(warning.details)
    if isinstance(details.get("person_id"), str):
        details["person_id"] = scope.person_id(details["person_id"])
    return WarningOut(code=warning.code, message=warning.message, details=details)


def face_record_out(face: Face) -> FaceOut:
    return FaceOut(
        face_id=face.id,
        space=face.space,
        quality=face.quality,
        bbox=bbox_out(face.bbox) if face.bbox is not None else None,
        created_at=face.created_at,
    )


def collection_out(collection: Collection, scope: TenantScope) -> CollectionOut:
    return CollectionOut(
        name=scope.collection_name(collection.name),
        description=collection.description,
        person_count=collection.person_count,
        created_at=collection.created_at,
    )


def face_identity_out(tag: FaceTag, scope: TenantScope, with_landmarks: bool) -> FaceIdentityOut:
    """One face of a photo identified by recognize-all (or a stored photo)."""
    probe = tag.probe
    return FaceIdentityOut(
        index=probe.index,
        bbox=bbox_out(probe.detection.bbox),
        confidence=round(probe.detection.score, 4),
        landmarks=landmarks_out(probe.detection) if with_landmarks else None,
        quality=quality_out(probe.quality),
        best_match=match_out(tag.best, scope) if tag.best is not None else None,
        unknown=tag.best is None,
        candidates=[match_out(m, scope) for m in tag.candidates],
        reason=tag.reason,
        decided_by=tag.decided_by,
    )


def tag_options(body: TagOptionsIn, collection: str) -> TagOptions:
    """The tagging options of a request, for the stored ``collection`` key."""
    return TagOptions(
        collection=collection,
        model=body.model_name,
        top_k=body.top_k,
        target_fpir=body.target_fpir,
        similarity_threshold=body.similarity_threshold,
        min_margin=body.min_margin,
        max_faces=body.max_faces,
        min_quality=body.min_quality,
        mode=body.processing_mode,
    )


def error_details(error: FaceRecError, scope: TenantScope) -> dict[str, Any]:
    """An error's details as the caller's tenant names things (a person id without its key)."""
    details = dict(error.details)
    if isinstance(details.get("person_id"), str):
        details["person_id"] = scope.person_id(details["person_id"])
    return details


def image_results(
    photos: list[ImageOutcome], face_ids: list[str], scope: TenantScope
) -> list[ImageResult]:
    """Each photo's outcome of an enrollment (``face_ids``: those of the accepted photos, in
    order), errors in the caller's tenant's names."""
    ids = iter(face_ids)
    results = []
    for photo in photos:
        warnings = [warning_out(w, scope) for w in photo.warnings]
        if photo.analysis is not None:
            quality = photo.analysis.subject.quality.score
            results.append(
                ImageResult(
                    index=photo.index,
                    accepted=True,
                    face_id=next(ids),
                    face_quality=quality,
                    warnings=warnings,
                )
            )
        elif photo.error is not None:
            error = photo.error
            results.append(
                ImageResult(
                    index=photo.index,
                    accepted=False,
                    reason=error.code,
                    message=error.message,
                    details=error_details(error, scope),
                    warnings=warnings,
                )
            )
    return results
