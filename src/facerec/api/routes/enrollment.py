"""Enrollment: one photo of a person (JSON and multipart) or an employee from several photos.

Each pair of routes shares one handler; the image comes through :func:`image_bytes` either way.
Enrollment routes take an optional ``Idempotency-Key`` (:mod:`facerec.api.idempotency`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Response, UploadFile

from facerec.api.auth import PrincipalDep
from facerec.api.convert import face_info, image_results, person_out, warning_out
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.idempotency import IdempotencyKey, idempotent
from facerec.api.schemas.common import GALLERY_RESPONSES, IMAGE_ERRORS
from facerec.api.schemas.enrollment import (
    AddFaceRequest,
    AddFaceResponse,
    RegisterMultipleRequest,
    RegisterMultipleResponse,
)
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.auth.principal import Principal
from facerec.domain.enrollment_values import GuardPolicy
from facerec.domain.probes import ProcessingMode
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.errors import InvalidInputError
from facerec.inference.images import check_request_pixels
from facerec.state import AppState
from facerec.storage.models import NewPerson

router = APIRouter(
    prefix="/api/face-recognition",
    tags=["Enrollment"],
    responses=GALLERY_RESPONSES,
    route_class=OffloadedJSONRoute,
)


def _mode(fast_mode: bool, mode: ProcessingMode) -> ProcessingMode:
    return ProcessingMode.FAST if fast_mode else mode


def _metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError("metadata must be a JSON object", code="invalid_metadata") from exc
    if not isinstance(value, dict):
        raise InvalidInputError("metadata must be a JSON object", code="invalid_metadata")
    return value


# --- enrollment -------------------------------------------------------------------------------


async def _add_face(
    state: AppState,
    principal: Principal,
    scope: TenantScope,
    source: ImageSource,
    body: AddFaceRequest,
) -> AddFaceResponse:
    collection = await state.persons.collection_key(scope, body.collection)
    person_id = scope.person_key(body.person_id) if body.person_id else None
    image = await image_bytes(source, state.settings.limits)
    timer = StageTimer(state.metrics.stage)
    done = await state.enrollment.add_face(
        image=image,
        person_name=body.person_name,
        person_id=person_id,
        model=body.model_name,
        metadata=body.metadata,
        collection=collection,
        mode=_mode(body.fast_mode, body.processing_mode),
        check_liveness=body.check_liveness,
        on_duplicate=body.on_duplicate,
        on_inconsistent=body.on_inconsistent,
        timer=timer,
    )
    await state.audit.record(
        principal, "face.enroll", done.person.id, face_id=done.face_id, collection=collection
    )
    return AddFaceResponse(
        person_id=scope.person_id(done.person.id),
        person_name=done.person.name,
        face_id=done.face_id,
        model_used=done.analysis.embedder or "",
        face_quality=done.analysis.subject.quality.score,
        face=face_info(done.analysis),
        person=person_out(done.person, scope),
        embedding_space=done.analysis.space or "",
        warnings=[warning_out(w, scope) for w in done.warnings],
        processing_time=round(timer.total, 4),
    )


@router.post(
    "/add-face",
    response_model=AddFaceResponse,
    summary="Enroll one face of a person",
    description="Enrolls the subject of one photo: a new person (`person_id` omitted: a UUID) or "
    "one more face of an existing person. Template guards answer `warnings` "
    "(`possible_duplicate`, `inconsistent_with_person`) or, with `on_duplicate` / "
    "`on_inconsistent` = `reject`, 409 and nothing written. An optional "
    "`Idempotency-Key` header makes retries safe (the replay carries "
    "`Idempotent-Replayed: true`). Scope `enroll`. Errors: 422 `no_face`, "
    "`multiple_faces` (another face competes with the subject), `low_quality`, "
    "`spoof_detected`, `invalid_name`, `invalid_value`, `invalid_metadata`; 409 "
    "`person_in_other_collection`, `possible_duplicate` / `inconsistent_with_person` "
    "(with `reject`), `idempotency_key_reused`, `idempotency_key_in_progress`; 400 "
    "`invalid_idempotency_key`; 404 `collection_not_found`; 403 "
    "`collection_forbidden`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`, `liveness_unavailable`.",
)
async def add_face(
    body: AddFaceRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    idempotency_key: IdempotencyKey = None,
) -> AddFaceResponse | Response:
    return await idempotent(
        state,
        idempotency_key,
        "add-face",
        body,
        lambda: _add_face(state, principal, scope, body.face_image_base64, body),
        tenant=scope.tenant,
    )


@router.post(
    "/add-face-upload",
    response_model=AddFaceResponse,
    summary="Enroll one face (multipart)",
    description="The same as `POST /api/face-recognition/add-face` with the photo uploaded. Form "
    "fields: `file` (the image: JPG, PNG, BMP, TIFF or WEBP, recognised by content; "
    "the file name is ignored), `person_name` (required, ≤ 200 characters), "
    "`person_id`, `model_name`, `metadata` (a JSON object as text), `collection` "
    "(default `default`), `fast_mode`, `processing_mode`, `check_liveness`, "
    "`on_duplicate` and `on_inconsistent` (`warn` or `reject`). Takes the "
    "`Idempotency-Key` header too. Scope `enroll`. Errors: 422 `no_face`, "
    "`multiple_faces` (another face competes with the subject), `low_quality`, "
    "`spoof_detected`, `invalid_name`, `invalid_value`, `invalid_metadata`; 409 "
    "`person_in_other_collection`, `possible_duplicate` / `inconsistent_with_person` "
    "(with `reject`), `idempotency_key_reused`, `idempotency_key_in_progress`; 400 "
    "`invalid_idempotency_key`; 404 `collection_not_found`; 403 "
    "`collection_forbidden`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`, `liveness_unavailable`.",
)
async def add_face_upload(
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File()],
    person_name: Annotated[str, Form(min_length=1, max_length=200)],
    person_id: Annotated[str | None, Form()] = None,
    model_name: Annotated[str, Form()] = "auto",
    metadata: Annotated[str | None, Form(description="JSON object")] = None,
    collection: Annotated[str, Form()] = "default",
    fast_mode: Annotated[bool, Form()] = False,
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
    check_liveness: Annotated[bool | None, Form()] = None,
    on_duplicate: Annotated[GuardPolicy, Form()] = GuardPolicy.WARN,
    on_inconsistent: Annotated[GuardPolicy, Form()] = GuardPolicy.WARN,
    idempotency_key: IdempotencyKey = None,
) -> AddFaceResponse | Response:
    body = AddFaceRequest(
        person_name=person_name,
        person_id=person_id or None,
        face_image_base64="",
        model_name=model_name,
        metadata=_metadata(metadata),
        collection=collection,
        fast_mode=fast_mode,
        processing_mode=processing_mode,
        check_liveness=check_liveness,
        on_duplicate=on_duplicate,
        on_inconsistent=on_inconsistent,
    )
    return await idempotent(
        state,
        idempotency_key,
        "add-face-upload",
        body,
        lambda: _add_face(state, principal, scope, file, body),
        file,
        tenant=scope.tenant,
    )


@router.post(
    "/register-multiple",
    response_model=RegisterMultipleResponse,
    summary="Register a person (e.g. an employee) from several photos, atomically",
    description="Registers an employee from several photos (at most "
    "`limits.max_images_per_request`). Each image is accepted or rejected with a "
    "reason code; the person exists with every accepted face, or nothing was written. "
    "An existing `employee_id` in the collection is 409 unless `replace=true`. Scope "
    "`enroll`. Errors: 422 `no_usable_images` (details list each image's reason); 409 "
    "`duplicate_employee_id`, `possible_duplicate` (with `reject`), "
    "`idempotency_key_reused`; 413 `too_many_pixels`; 400 `too_many_images`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`.",
)
async def register_multiple(
    body: RegisterMultipleRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    idempotency_key: IdempotencyKey = None,
) -> RegisterMultipleResponse | Response:
    return await idempotent(
        state,
        idempotency_key,
        "register-multiple",
        body,
        lambda: _register_multiple(state, principal, scope, body),
        tenant=scope.tenant,
    )


async def _register_multiple(
    state: AppState, principal: Principal, scope: TenantScope, body: RegisterMultipleRequest
) -> RegisterMultipleResponse:
    collection = await state.persons.collection_key(scope, body.collection)
    limits = state.settings.limits
    if len(body.images) > limits.max_images_per_request:
        raise InvalidInputError(
            f"{len(body.images)} images sent; at most {limits.max_images_per_request} per request",
            code="too_many_images",
            limit=limits.max_images_per_request,
        )
    images = [await image_bytes(text, limits) for text in body.images]
    check_request_pixels(images, limits)  # total work, from the headers (413)
    timer = StageTimer(state.metrics.stage)
    person = NewPerson(
        name=body.full_name,
        collection=collection,
        employee_id=body.employee_id,
        department=body.department,
        position=body.position,
        metadata=dict(body.metadata or {}),
    )
    enrollment = await state.enrollment.register_multiple(
        images=images,
        person=person,
        model=body.model_name,
        mode=body.processing_mode,
        replace=body.replace,
        check_liveness=body.check_liveness,
        on_duplicate=body.on_duplicate,
        on_inconsistent=body.on_inconsistent,
        timer=timer,
    )
    await state.audit.record(
        principal,
        "person.register",
        enrollment.person.id,
        collection=collection,
        faces=len(enrollment.face_ids),
        replaced=not enrollment.created,
    )
    results = image_results(enrollment.outcomes, enrollment.face_ids, scope)
    accepted = sum(1 for r in results if r.accepted)
    return RegisterMultipleResponse(
        person=person_out(enrollment.person, scope),
        created=enrollment.created,
        images_total=len(results),
        images_accepted=accepted,
        images_rejected=len(results) - accepted,
        results=results,
        model_used=enrollment.embedder,
        warnings=[warning_out(w, scope) for w in enrollment.warnings],
        processing_time=round(timer.total, 4),
    )
