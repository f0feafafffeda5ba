"""Bulk enrollment between the API and the domain: a batch's person as the domain takes it, and
each person's outcome as the API answers it, in the caller's tenant's names.

Apart from the route (:mod:`facerec.api.routes.bulk_enrollment`), which stays thin; each photo's
outcome is shaped by :func:`facerec.api.convert.image_results`, as for single enrollment.
"""

from __future__ import annotations

from facerec.api.convert import error_details, image_results, person_out, warning_out
from facerec.api.schemas.bulk_enrollment import BatchPersonFields, BatchPersonResult
from facerec.domain.bulk_enrollment import BulkPerson, PersonOutcome, PersonStatus
from facerec.domain.bulk_enrollment_analysis import PhotoInput
from facerec.domain.enrollment_values import ImageOutcome
from facerec.domain.tenancy import TenantScope
from facerec.errors import InvalidInputError


def bulk_person(
    fields: BatchPersonFields, photos: list[PhotoInput], scope: TenantScope
) -> BulkPerson:
    person_id, refused = None, None
    try:
        person_id = scope.person_key(fields.person_id) if fields.person_id else None
    except InvalidInputError as exc:  # this person's fault only
        refused = exc
    return BulkPerson(
        name=fields.person_name,
        images=photos,
        person_id=person_id,
        refused=refused,
        employee_id=fields.employee_id,
        department=fields.department,
        position=fields.position,
        metadata=dict(fields.metadata or {}),
    )


def person_result(outcome: PersonOutcome, scope: TenantScope) -> BatchPersonResult:
    photos: list[ImageOutcome] = outcome.photos
    if outcome.status is PersonStatus.REJECTED:  # nothing written: no photo was accepted
        photos = [
            o if o.error is not None else ImageOutcome(o.index, error=outcome.error) for o in photos
        ]
    results = image_results(photos, outcome.face_ids, scope)
    accepted = sum(1 for r in results if r.accepted)
    error = outcome.error
    return BatchPersonResult(
        index=outcome.index,
        status=outcome.status,
        person=person_out(outcome.person, scope) if outcome.person is not None else None,
        reason=error.code if error else None,
        message=error.message if error else None,
        details=error_details(error, scope) if error else {},
        images_accepted=accepted,
        images_rejected=len(results) - accepted,
        results=results,
        warnings=[warning_out(w, scope) for w in outcome.warnings],
    )
