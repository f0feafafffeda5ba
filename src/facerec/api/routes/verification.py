"""Verification (1:1): are the subjects of two photos the same person?

Both routes share one handler; the images come through :func:`image_bytes` either way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facerec.api.convert import face_info
from facerec.api.deps import StateDep
from facerec.api.schemas.common import GALLERY_RESPONSES, IMAGE_ERRORS
from facerec.api.schemas.recognition import CompareRequest, CompareResponse
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.domain.probes import ProcessingMode
from facerec.domain.timing import StageTimer
from facerec.state import AppState

router = APIRouter(
    prefix="/api/face-recognition",
    tags=["Face recognition"],
    responses=GALLERY_RESPONSES,
    route_class=OffloadedJSONRoute,
)


async def _compare(
    state: AppState,
    first_source: ImageSource,
    second_source: ImageSource,
    model_name: str,
    mode: ProcessingMode,
) -> CompareResponse:
    limits = state.settings.limits
    first = await image_bytes(first_source, limits)
    second = await image_bytes(second_source, limits)
    timer = StageTimer(state.metrics.stage)
    result = await state.verification.compare(
        first=first, second=second, model=model_name, mode=mode, timer=timer
    )
    fmr = result.fmr
    return CompareResponse(
        is_same_person=result.same,
        similarity_score=round(result.similarity, 4),
        distance=round(result.distance, 4),
        threshold=result.threshold,
        confidence=round(result.confidence, 4),
        false_match_rate=None if fmr is None else float(f"{fmr:.4g}"),
        model_used=result.embedder,
        face1=face_info(result.analyses[0]),
        face2=face_info(result.analyses[1]),
        processing_time=round(timer.total, 4),
    )


@router.post(
    "/compare",
    response_model=CompareResponse,
    summary="Verify two faces (1:1)",
    description="Compares the subjects of two photos: `is_same_person` is `distance ≤ threshold` "
    "(the model's calibrated 1:1 threshold), with `similarity_score` (0.5 at the "
    "threshold), `confidence` (0.5-1) and the calibrated `false_match_rate`. Scope "
    "`recognize`. Errors: 422 `no_face`; " + IMAGE_ERRORS + " (the body limit counts two images).",
)
async def compare(body: CompareRequest, state: StateDep) -> CompareResponse:
    return await _compare(
        state,
        body.face1_image_base64,
        body.face2_image_base64,
        body.model_name,
        body.processing_mode,
    )


@router.post(
    "/compare-upload",
    response_model=CompareResponse,
    summary="Verify two faces (multipart)",
    description="The same as `POST /api/face-recognition/compare` with both images uploaded. Form "
    "fields: `file1` and `file2` (the two images: JPG, PNG, BMP, TIFF or WEBP), "
    "`model_name` (default `auto`), `processing_mode` (`fast`, `balanced`, "
    "`accurate`). Scope `recognize`. Errors: 422 `no_face`; " + IMAGE_ERRORS + ".",
)
async def compare_upload(
    state: StateDep,
    file1: Annotated[UploadFile, File()],
    file2: Annotated[UploadFile, File()],
    model_name: Annotated[str, Form()] = "auto",
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
) -> CompareResponse:
    return await _compare(state, file1, file2, model_name, processing_mode)
