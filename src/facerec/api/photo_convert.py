"""A stored photo as the API answers it (:func:`photo_out`), for the photo routes."""

from __future__ import annotations

from facerec.api.convert import bbox_out, match_out, operating_point_out
from facerec.api.schemas.photos import PhotoFaceOut, PhotoImageOut, PhotoResponse
from facerec.domain.photo_views import PhotoView
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer


def photo_out(
    view: PhotoView, scope: TenantScope, timer: StageTimer | None = None
) -> PhotoResponse:
    photo = view.photo
    top_k = int(photo.options.get("top_k", 3))
    faces = []
    for face in photo.faces:
        person = view.person(face)
        faces.append(
            PhotoFaceOut(
                index=face.index,
                bbox=bbox_out(face.bbox),
                confidence=round(face.confidence, 4),
                quality=round(face.quality, 1),
                quality_reasons=list(face.quality_reasons),
                reason=face.reason,
                person_id=scope.person_id(person.id) if person else None,
                person_name=person.name if person else None,
                unknown=person is None,
                status=face.status if person else "unknown",
                similarity=rounded(view.similarity(face)) if person else None,
                decided_by=face.decided_by,
                candidates=[match_out(m, scope) for m in view.candidates(face, top_k)],
                rejected_person_ids=sorted(scope.person_id(p) for p in face.rejected),
                suggestion_id=face.cluster_id,
                enrolled_face_id=face.enrolled_face_id,
            )
        )
    return PhotoResponse(
        photo_id=scope.person_id(photo.id),
        collection=scope.collection_name(photo.collection),
        faces_detected=len(faces),
        faces_identified=sum(1 for f in faces if not f.unknown),
        faces=faces,
        model_used=photo.embedder or "",
        embedding_space=photo.space or "",
        image_info=PhotoImageOut(
            width=photo.width, height=photo.height, format=photo.format, sha256=photo.image_sha256
        ),
        image_stored=photo.image_stored,
        operating_point=operating_point_out(view.point, "per_face") if view.point else None,
        created_at=photo.created_at,
        updated_at=photo.updated_at,
        processing_time=round(timer.total, 4) if timer is not None else None,
    )


def rounded(value: float | None) -> float | None:
    """A similarity as answered: 4 decimals, or None."""
    return None if value is None else round(value, 4)
