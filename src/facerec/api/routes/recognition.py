"""Identification (1:N, open set: one face, or every face of a photo); verification (1:1) is
in :mod:`facerec.api.routes.verification`.

Each pair of routes shares one handler; the image comes through :func:`image_bytes` either way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facerec.api.convert import (
    face_identity_out,
    face_info,
    image_info,
    match_out,
    operating_point_out,
    tag_options,
)
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.publish import publish_identification
from facerec.api.schemas.common import GALLERY_RESPONSES, IMAGE_ERRORS
from facerec.api.schemas.recognition import (
    RecognizeAllRequest,
    RecognizeAllResponse,
    RecognizeRequest,
    RecognizeResponse,
)
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.domain.identification import RecognizeOptions
from facerec.domain.probes import ProcessingMode
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.state import AppState

router = APIRouter(
    prefix="/api/face-recognition",
    tags=["Face recognition"],
    responses=GALLERY_RESPONSES,
    route_class=OffloadedJSONRoute,
)


async def _recognize(
    state: AppState, scope: TenantScope, source: ImageSource, body: RecognizeRequest
) -> RecognizeResponse:
    gallery = body.gallery
    if gallery is None or isinstance(
        gallery, str
    ):  # a collection; inline galleries are the client's
        gallery = await state.persons.collection_key(scope, gallery or "default")
    image = await image_bytes(source, state.settings.limits)
    timer = StageTimer(state.metrics.stage)
    options = RecognizeOptions(
        gallery=gallery,
        model=body.model_name,
        top_k=body.top_k,
        target_fpir=body.target_fpir,
        similarity_threshold=body.similarity_threshold,
        min_margin=body.min_margin,
        mode=body.processing_mode,
        check_liveness=body.check_liveness,
        min_quality=body.min_quality,
    )
    result = await state.identification.recognize(image=image, request=options, timer=timer)
    matches = [match_out(m, scope) for m in result.matches]
    best = match_out(result.best, scope) if result.best is not None else None
    face = face_info(result.analysis)
    if best is not None and isinstance(body.gallery, str | None):
        publish_identification(
            state, scope, body.gallery or "default", best, face.bbox, source="recognize"
        )
    return RecognizeResponse(
        matches_found=sum(1 for m in matches if m.is_match),
        matches=matches,
        best_match=best,
        unknown=best is None,
        confidence_scores=[m.similarity for m in matches],
        model_used=result.analysis.embedder or "",
        embedding_space=result.analysis.space or "",
        face=face,
        faces_in_image=result.analysis.faces_in_image,
        operating_point=operating_point_out(result.point, result.decision.decided_by),
        processing_time=round(timer.total, 4),
    )


@router.post(
    "/recognize",
    response_model=RecognizeResponse,
    summary="Identify a face (1:N, open set)",
    description="Identifies the subject of the photo (its most prominent face; other faces never "
    "make it fail) against a collection (`gallery`, default `default`) or an inline "
    "gallery of embeddings. Answers the top-k `matches`, `best_match` (null with "
    "`unknown: true` when no one is decided known) and the `operating_point`: by "
    "default the threshold follows `target_fpir` (0.01) for the gallery's size; "
    "`similarity_threshold` fixes it instead; `min_margin` makes close runner-ups "
    "unknown. Scope `recognize`. Errors: 404 `collection_not_found`; 403 "
    "`collection_forbidden`; 422 `no_face`, `low_quality` (below `min_quality`), "
    "`spoof_detected`; " + IMAGE_ERRORS + "; 503 `storage_unavailable`, `liveness_unavailable`.",
)
async def recognize(body: RecognizeRequest, state: StateDep, scope: ScopeDep) -> RecognizeResponse:
    return await _recognize(state, scope, body.face_image_base64, body)


@router.post(
    "/recognize-upload",
    response_model=RecognizeResponse,
    summary="Identify a face (multipart)",
    description="The same as `POST /api/face-recognition/recognize` with the image uploaded. Form "
    "fields: `file` (the image: JPG, PNG, BMP, TIFF or WEBP, recognised by content; "
    "the file name is ignored), `gallery` (collection name, default `default`), "
    "`model_name`, `top_k` (1-100, default 5), `target_fpir` (0-1 exclusive), "
    "`similarity_threshold` (0-1), `min_margin` (default 0.05), `processing_mode` "
    "(`fast`, `balanced`, `accurate`), `check_liveness`, `min_quality` (0-100). Scope "
    "`recognize`. Errors: 404 `collection_not_found`; 403 `collection_forbidden`; 422 "
    "`no_face`, `low_quality` (below `min_quality`), `spoof_detected`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`, `liveness_unavailable`.",
)
async def recognize_upload(
    state: StateDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File()],
    gallery: Annotated[str, Form(description="Collection name")] = "default",
    model_name: Annotated[str, Form()] = "auto",
    top_k: Annotated[int, Form(ge=1, le=100)] = 5,
    target_fpir: Annotated[float | None, Form(gt=0.0, lt=1.0)] = None,
    similarity_threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    min_margin: Annotated[float, Form(ge=0.0, le=1.0)] = 0.05,
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
    check_liveness: Annotated[bool | None, Form()] = None,
    min_quality: Annotated[float, Form(ge=0.0, le=100.0)] = 0.0,
) -> RecognizeResponse:
    body = RecognizeRequest(
        face_image_base64="",
        gallery=gallery,
        model_name=model_name,
        top_k=top_k,
        target_fpir=target_fpir,
        similarity_threshold=similarity_threshold,
        min_margin=min_margin,
        processing_mode=processing_mode,
        check_liveness=check_liveness,
        min_quality=min_quality,
    )
    return await _recognize(state, scope, file, body)


async def _recognize_all(
    state: AppState, scope: TenantScope, source: ImageSource, body: RecognizeAllRequest
) -> RecognizeAllResponse:
    collection = await state.persons.collection_key(scope, body.collection)
    image = await image_bytes(source, state.settings.limits)
    timer = StageTimer(state.metrics.stage)
    options = tag_options(body, collection)
    tagging = await state.tagging.tag(image, options, timer)
    faces = [face_identity_out(tag, scope, with_landmarks=True) for tag in tagging.faces]
    for face in faces:
        if face.best_match is not None:
            publish_identification(
                state,
                scope,
                body.collection,
                face.best_match,
                face.bbox,
                source="recognize-all",
                face_index=face.index,
            )
    return RecognizeAllResponse(
        faces_detected=tagging.analysis.faces_in_image,
        faces_identified=sum(1 for f in faces if f.best_match is not None),
        faces=faces,
        model_used=tagging.analysis.embedder or "",
        embedding_space=tagging.analysis.space or "",
        operating_point=operating_point_out(tagging.point, "per_face"),
        image_info=image_info(tagging.analysis.image),
        processing_time=round(timer.total, 4),
    )


@router.post(
    "/recognize-all",
    response_model=RecognizeAllResponse,
    summary="Identify every face of a photo (each identity at most once)",
    description="Analyses a group photo once and identifies every usable face against one "
    "collection at one operating point; identities are assigned over all faces at "
    "once, so one person is named at most once per photo (`decided_by: assignment` "
    "when a stronger face took them). Faces too small or under `min_quality` come "
    "back with their `reason` and no identity. Scope `recognize`. Errors: 404 "
    "`collection_not_found`; 403 `collection_forbidden`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`.",
)
async def recognize_all(
    body: RecognizeAllRequest, state: StateDep, scope: ScopeDep
) -> RecognizeAllResponse:
    return await _recognize_all(state, scope, body.face_image_base64, body)


@router.post(
    "/recognize-all-upload",
    response_model=RecognizeAllResponse,
    summary="Identify every face of a photo (multipart)",
    description="The same as `POST /api/face-recognition/recognize-all` with the image uploaded. "
    "Form fields: `file` (the image: JPG, PNG, BMP, TIFF or WEBP, recognised by "
    "content; the file name is ignored), `collection` (default `default`), "
    "`model_name`, `top_k` (1-20, default 3), `target_fpir`, `similarity_threshold`, "
    "`min_margin` (default 0.05), `max_faces` (1-200, default 50), `min_quality` "
    "(0-100). Scope `recognize`. Errors: 404 `collection_not_found`; 403 "
    "`collection_forbidden`; " + IMAGE_ERRORS + "; 503 `storage_unavailable`.",
)
async def recognize_all_upload(
    state: StateDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File()],
    collection: Annotated[str, Form()] = "default",
    model_name: Annotated[str, Form()] = "auto",
    top_k: Annotated[int, Form(ge=1, le=20)] = 3,
    target_fpir: Annotated[float | None, Form(gt=0.0, lt=1.0)] = None,
    similarity_threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    min_margin: Annotated[float, Form(ge=0.0, le=1.0)] = 0.05,
    max_faces: Annotated[int, Form(ge=1, le=200)] = 50,
    min_quality: Annotated[float, Form(ge=0.0, le=100.0)] = 0.0,
) -> RecognizeAllResponse:
    body = RecognizeAllRequest(
        face_image_base64="",
        collection=collection,
        model_name=model_name,
        top_k=top_k,
        target_fpir=target_fpir,
        similarity_threshold=similarity_threshold,
        min_margin=min_margin,
        max_faces=max_faces,
        min_quality=min_quality,
    )
    return await _recognize_all(state, scope, file, body)
