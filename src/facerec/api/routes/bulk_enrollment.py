"""Bulk enrollment: many persons with several photos each, in one request (JSON or multipart).

The batch is bounded before any photo is decoded: photos in all (``limits.max_bulk_images``),
per person (``limits.max_images_per_request``), encoded bytes in all (``limits.max_bulk_bytes``)
and header pixels in all (``limits.max_bulk_pixels``). Inside those bounds a bad photo or person
is its own result, never the batch's failure. Takes an optional ``Idempotency-Key``.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from facerec.api.auth import PrincipalDep
from facerec.api.bulk_convert import bulk_person, person_result
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.idempotency import IdempotencyKey, idempotent
from facerec.api.schemas.bulk_enrollment import (
    BatchOptions,
    EnrollBatchRequest,
    EnrollBatchResponse,
    persons_form,
)
from facerec.api.schemas.common import GALLERY_RESPONSES, IMAGE_ERRORS
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.auth.principal import Principal
from facerec.domain.bulk_enrollment import BulkOptions, BulkPerson, PersonStatus
from facerec.domain.bulk_enrollment_analysis import PhotoInput
from facerec.domain.bulk_enrollment_batch import (
    build_bulk_enrollment,
    check_bytes,
    check_counts,
    check_photos,
)
from facerec.domain.enrollment_values import GuardPolicy
from facerec.domain.probes import ProcessingMode
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.errors import InvalidInputError
from facerec.state import AppState

router = APIRouter(
    prefix="/api/face-recognition",
    tags=["Enrollment"],
    responses=GALLERY_RESPONSES,
    route_class=OffloadedJSONRoute,
)

ERRORS = (
    "Scope `enroll`. Per photo (in `results`): the reasons of add-face (`no_face`, "
    "`multiple_faces`, `low_quality`, `spoof_detected`, `inconsistent_with_person` with "
    "`reject`, " + IMAGE_ERRORS.replace("; ", ", ") + "). Per person: `no_usable_images`, "
    "`possible_duplicate` (with `reject`), `duplicate_employee_id`, "
    "`person_in_other_collection`, `invalid_person_id`, `invalid_name`, `invalid_value`, "
    "`invalid_metadata`. For the whole batch: 400 "
    "`too_many_images` (more than `limits.max_bulk_images` photos, or more than "
    "`limits.max_images_per_request` for one person), `invalid_batch`; 413 `batch_too_large` "
    "(more than `limits.max_bulk_bytes` bytes of photos), `too_many_pixels`, "
    "`payload_too_large`; 404 `collection_not_found`; 403 `collection_forbidden`; 409 "
    "`idempotency_key_reused`; 429 `overloaded`; 503 `storage_unavailable`, "
    "`liveness_unavailable`."
)


async def _read(source: ImageSource, state: AppState) -> PhotoInput:
    try:
        return await image_bytes(source, state.settings.limits)
    except InvalidInputError as exc:  # this photo's fault (bad base64, too large, empty)
        return exc


async def _enroll(
    state: AppState,
    principal: Principal,
    scope: TenantScope,
    options: BatchOptions,
    persons: list[BulkPerson],
) -> EnrollBatchResponse:
    started = time.perf_counter()
    collection = await state.persons.collection_key(scope, options.collection)
    timer = StageTimer()  # stages reach the metrics from each thread; the sum is CPU, not wall
    service = build_bulk_enrollment(
        settings=state.settings,
        models=state.bulk_manager(options.model_name),
        executor=state.executor,
        enrollment=state.enrollment,
        sink=state.metrics.stage,
    )
    done = await service.enroll(
        persons,
        BulkOptions(
            collection=collection,
            model=options.model_name,
            mode=options.processing_mode,
            check_liveness=options.check_liveness,
            on_duplicate=options.on_duplicate,
            on_inconsistent=options.on_inconsistent,
        ),
        timer,
    )
    results = [person_result(o, scope) for o in done.outcomes]
    for outcome in done.outcomes:
        if outcome.person is None:
            continue
        action = "person.register" if outcome.status is PersonStatus.CREATED else "face.enroll"
        await state.audit.record(
            principal,
            action,
            outcome.person.id,
            collection=collection,
            faces=len(outcome.face_ids),
            batch=True,
        )
    count = {s: sum(1 for r in results if r.status is s) for s in PersonStatus}
    accepted = sum(r.images_accepted for r in results)
    rejected = sum(r.images_rejected for r in results)
    return EnrollBatchResponse(
        collection=options.collection,
        persons_total=len(results),
        persons_created=count[PersonStatus.CREATED],
        persons_added=count[PersonStatus.ADDED],
        persons_rejected=count[PersonStatus.REJECTED],
        images_total=accepted + rejected,
        images_accepted=accepted,
        images_rejected=rejected,
        results=results,
        model_used=done.embedder,
        embedding_space=done.space,
        processing_time=round(time.perf_counter() - started, 4),
    )


@router.post(
    "/enroll-batch",
    response_model=EnrollBatchResponse,
    summary="Enroll many persons with several photos each (bulk)",
    description="The bulk path of `facerec enroll`: every photo of the batch is analysed at once "
    "(face detection spread over the inference threads, all faces embedded in one batched "
    "call), then each person is written in one transaction: a new person like "
    "register-multiple (outlier photos, duplicate check against the collection), photos for "
    "an existing `person_id` like add-face. Each photo and each person gets its own result; a "
    "rejected person has nothing written. " + ERRORS,
)
async def enroll_batch(
    body: EnrollBatchRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    idempotency_key: IdempotencyKey = None,
) -> EnrollBatchResponse | Response:
    limits = state.settings.limits
    check_counts([len(p.images) for p in body.persons], limits)
    # base64 text clearly beyond the bytes allowed is refused before any of it is decoded (a
    # data-URL prefix of up to 64 characters per photo is not counted); the exact check follows
    photos = [i for p in body.persons for i in p.images]
    check_bytes(sum(max(0, len(i) - 64) for i in photos) * 3 // 4, limits)

    async def handler() -> EnrollBatchResponse:
        persons = []
        for fields in body.persons:
            photos = [await _read(image, state) for image in fields.images]
            persons.append(bulk_person(fields, photos, scope))
        check_photos([p for person in persons for p in person.images], limits)
        return await _enroll(state, principal, scope, body, persons)

    return await idempotent(
        state, idempotency_key, "enroll-batch", body, handler, tenant=scope.tenant
    )


@router.post(
    "/enroll-batch-upload",
    response_model=EnrollBatchResponse,
    summary="Enroll many persons with several photos each (bulk, multipart)",
    description="The same as `POST /api/face-recognition/enroll-batch` with the photos uploaded "
    "as `files` parts; the form field `persons` is a JSON list of persons (`person_name`, "
    "`person_id`, `employee_id`, `department`, `position`, `metadata`) each with `files`: the "
    "positions (from 0) of its photos among the uploaded files. Other form fields: "
    "`collection`, `model_name`, `processing_mode`, `check_liveness`, `on_duplicate`, "
    "`on_inconsistent`. " + ERRORS,
)
async def enroll_batch_upload(
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    persons: Annotated[str, Form(description="JSON list of persons with `files` positions")],
    files: Annotated[list[UploadFile], File()],
    collection: Annotated[str, Form()] = "default",
    model_name: Annotated[str, Form()] = "auto",
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
    check_liveness: Annotated[bool | None, Form()] = None,
    on_duplicate: Annotated[GuardPolicy, Form()] = GuardPolicy.WARN,
    on_inconsistent: Annotated[GuardPolicy, Form()] = GuardPolicy.WARN,
    idempotency_key: IdempotencyKey = None,
) -> EnrollBatchResponse | Response:
    limits = state.settings.limits
    listed = persons_form(persons, len(files))
    check_counts([len(p.files) for p in listed], limits)
    check_bytes(sum(f.size or 0 for f in files), limits)
    options = BatchOptions(
        collection=collection,
        model_name=model_name,
        processing_mode=processing_mode,
        check_liveness=check_liveness,
        on_duplicate=on_duplicate,
        on_inconsistent=on_inconsistent,
    )
    fingerprint = EnrollBatchRequest.model_validate(
        options.model_dump()
        | {"persons": [p.model_dump() | {"images": [str(f) for f in p.files]} for p in listed]}
    )

    async def handler() -> EnrollBatchResponse:
        read: dict[int, PhotoInput] = {}
        for index, upload in enumerate(files):
            await upload.seek(0)
            read[index] = await _read(upload, state)
        batch = [bulk_person(p, [read[f] for f in p.files], scope) for p in listed]
        check_photos(list(read.values()), limits)
        return await _enroll(state, principal, scope, options, batch)

    return await idempotent(
        state,
        idempotency_key,
        "enroll-batch-upload",
        fingerprint,
        handler,
        *files,
        tenant=scope.tenant,
    )
