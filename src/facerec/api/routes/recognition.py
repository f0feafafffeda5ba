"""Face recognition: enrollment, identification, verification (JSON and multipart)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from facerec.api.convert import face_info, match_out, person_out
from facerec.api.deps import StateDep
from facerec.api.schemas.common import ERROR_RESPONSES
from facerec.api.schemas.recognition import (
    AddFaceRequest,
    AddFaceResponse,
    CompareRequest,
    CompareResponse,
    ImageResult,
    RecognizeRequest,
    RecognizeResponse,
    RegisterMultipleRequest,
    RegisterMultipleResponse,
)
from facerec.api.uploads import read_upload
from facerec.domain.faces import ProcessingMode
from facerec.domain.gallery import Recognition, RecognizeOptions, Verification
from facerec.domain.timing import StageTimer
from facerec.errors import InvalidInputError
from facerec.inference.images import decode_base64
from facerec.state import AppState
from facerec.storage.models import NewPerson

router = APIRouter(
    prefix="/api/face-recognition", tags=["Face recognition"], responses=ERROR_RESPONSES
)


def _mode(fast_mode: bool, mode: ProcessingMode) -> ProcessingMode:
    return ProcessingMode.FAST if fast_mode else mode


async def _add_face(
    state: AppState,
    image: bytes,
    *,
    person_name: str,
    person_id: str | None,
    model_name: str,
    metadata: dict[str, Any] | None,
    collection: str,
    mode: ProcessingMode,
    check_liveness: bool | None,
) -> AddFaceResponse:
    timer = StageTimer(state.metrics.stage)
    person, face_id, probe = await state.gallery.add_face(
        image=image,
        person_name=person_name,
        person_id=person_id,
        model=model_name,
        metadata=metadata,
        collection=collection,
        mode=mode,
        check_liveness=check_liveness,
        timer=timer,
    )
    return AddFaceResponse(
        person_id=person.id,
        person_name=person.name,
        face_id=face_id,
        model_used=probe.embedder,
        face_quality=probe.quality.score,
        face=face_info(probe),
        person=person_out(person),
        processing_time=round(timer.total, 4),
    )


@router.post("/add-face", response_model=AddFaceResponse, summary="Enroll one face of a person")
async def add_face(body: AddFaceRequest, state: StateDep) -> AddFaceResponse:
    image = decode_base64(body.face_image_base64, state.settings.limits)
    return await _add_face(
        state,
        image,
        person_name=body.person_name,
        person_id=body.person_id,
        model_name=body.model_name,
        metadata=body.metadata,
        collection=body.collection,
        mode=_mode(body.fast_mode, body.processing_mode),
        check_liveness=body.check_liveness,
    )


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


@router.post(
    "/add-face-upload", response_model=AddFaceResponse, summary="Enroll one face (multipart)"
)
async def add_face_upload(
    state: StateDep,
    file: Annotated[UploadFile, File()],
    person_name: Annotated[str, Form(min_length=1, max_length=200)],
    person_id: Annotated[str | None, Form()] = None,
    model_name: Annotated[str, Form()] = "auto",
    metadata: Annotated[str | None, Form(description="JSON object")] = None,
    collection: Annotated[str, Form()] = "default",
    fast_mode: Annotated[bool, Form()] = False,
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
    check_liveness: Annotated[bool | None, Form()] = None,
) -> AddFaceResponse:
    image = await read_upload(file, state.settings.limits.max_upload_bytes)
    return await _add_face(
        state,
        image,
        person_name=person_name,
        person_id=person_id or None,
        model_name=model_name,
        metadata=_metadata(metadata),
        collection=collection,
        mode=_mode(fast_mode, processing_mode),
        check_liveness=check_liveness,
    )


@router.post(
    "/register-multiple",
    response_model=RegisterMultipleResponse,
    summary="Register a person (e.g. an employee) from several photos, atomically",
)
async def register_multiple(
    body: RegisterMultipleRequest, state: StateDep
) -> RegisterMultipleResponse:
    limits = state.settings.limits
    if len(body.images) > limits.max_images_per_request:
        raise InvalidInputError(
            f"{len(body.images)} images sent; at most {limits.max_images_per_request} per request",
            code="too_many_images",
            limit=limits.max_images_per_request,
        )
    images = [decode_base64(text, limits) for text in body.images]
    timer = StageTimer(state.metrics.stage)
    person = NewPerson(
        name=body.full_name,
        collection=body.collection,
        employee_id=body.employee_id,
        department=body.department,
        position=body.position,
        metadata=dict(body.metadata or {}),
    )
    enrollment = await state.gallery.register_multiple(
        images=images,
        person=person,
        model=body.model_name,
        mode=body.processing_mode,
        replace=body.replace,
        check_liveness=body.check_liveness,
        timer=timer,
    )
    face_ids = iter(enrollment.face_ids)
    results = []
    for outcome in enrollment.outcomes:
        if outcome.probe is not None:
            results.append(
                ImageResult(
                    index=outcome.index,
                    accepted=True,
                    face_id=next(face_ids),
                    face_quality=outcome.probe.quality.score,
                )
            )
        elif outcome.error is not None:
            results.append(
                ImageResult(
                    index=outcome.index,
                    accepted=False,
                    reason=outcome.error.code,
                    message=outcome.error.message,
                    details=outcome.error.details,
                )
            )
    accepted = sum(1 for r in results if r.accepted)
    return RegisterMultipleResponse(
        person=person_out(enrollment.person),
        created=enrollment.created,
        images_total=len(results),
        images_accepted=accepted,
        images_rejected=len(results) - accepted,
        results=results,
        model_used=enrollment.embedder,
        processing_time=round(timer.total, 4),
    )


def _recognition_response(result: Recognition, timer: StageTimer) -> RecognizeResponse:
    matches = [match_out(m) for m in result.matches]
    best = match_out(result.best) if result.best is not None else None
    return RecognizeResponse(
        matches_found=sum(1 for m in matches if m.is_match),
        matches=matches,
        best_match=best,
        unknown=best is None,
        confidence_scores=[m.similarity for m in matches],
        model_used=result.probe.embedder,
        face=face_info(result.probe),
        processing_time=round(timer.total, 4),
    )


@router.post(
    "/recognize", response_model=RecognizeResponse, summary="Identify a face (1:N, open set)"
)
async def recognize(body: RecognizeRequest, state: StateDep) -> RecognizeResponse:
    image = decode_base64(body.face_image_base64, state.settings.limits)
    timer = StageTimer(state.metrics.stage)
    options = RecognizeOptions(
        gallery=body.gallery,
        model=body.model_name,
        top_k=body.top_k,
        similarity_threshold=body.similarity_threshold,
        mode=body.processing_mode,
        check_liveness=body.check_liveness,
        min_quality=body.min_quality,
    )
    result = await state.gallery.recognize(image=image, request=options, timer=timer)
    return _recognition_response(result, timer)


@router.post(
    "/recognize-upload", response_model=RecognizeResponse, summary="Identify a face (multipart)"
)
async def recognize_upload(
    state: StateDep,
    file: Annotated[UploadFile, File()],
    gallery: Annotated[str, Form(description="Collection name")] = "default",
    model_name: Annotated[str, Form()] = "auto",
    top_k: Annotated[int, Form(ge=1, le=100)] = 5,
    similarity_threshold: Annotated[float, Form(ge=0.0, le=1.0)] = 0.5,
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
    check_liveness: Annotated[bool | None, Form()] = None,
    min_quality: Annotated[float, Form(ge=0.0, le=100.0)] = 0.0,
) -> RecognizeResponse:
    image = await read_upload(file, state.settings.limits.max_upload_bytes)
    timer = StageTimer(state.metrics.stage)
    options = RecognizeOptions(
        gallery=gallery,
        model=model_name,
        top_k=top_k,
        similarity_threshold=similarity_threshold,
        mode=processing_mode,
        check_liveness=check_liveness,
        min_quality=min_quality,
    )
    result = await state.gallery.recognize(image=image, request=options, timer=timer)
    return _recognition_response(result, timer)


def _compare_response(result: Verification, timer: StageTimer) -> CompareResponse:
    return CompareResponse(
        is_same_person=result.same,
        similarity_score=round(result.similarity, 4),
        distance=round(result.distance, 4),
        threshold=result.threshold,
        confidence=round(result.confidence, 4),
        model_used=result.embedder,
        face1=face_info(result.probes[0]),
        face2=face_info(result.probes[1]),
        processing_time=round(timer.total, 4),
    )


@router.post("/compare", response_model=CompareResponse, summary="Verify two faces (1:1)")
async def compare(body: CompareRequest, state: StateDep) -> CompareResponse:
    limits = state.settings.limits
    first = decode_base64(body.face1_image_base64, limits)
    second = decode_base64(body.face2_image_base64, limits)
    timer = StageTimer(state.metrics.stage)
    result = await state.gallery.compare(
        first=first, second=second, model=body.model_name, mode=body.processing_mode, timer=timer
    )
    return _compare_response(result, timer)


@router.post(
    "/compare-upload", response_model=CompareResponse, summary="Verify two faces (multipart)"
)
async def compare_upload(
    state: StateDep,
    file1: Annotated[UploadFile, File()],
    file2: Annotated[UploadFile, File()],
    model_name: Annotated[str, Form()] = "auto",
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
) -> CompareResponse:
    limit = state.settings.limits.max_upload_bytes
    first = await read_upload(file1, limit)
    second = await read_upload(file2, limit)
    timer = StageTimer(state.metrics.stage)
    result = await state.gallery.compare(
        first=first, second=second, model=model_name, mode=processing_mode, timer=timer
    )
    return _compare_response(result, timer)
