"""Face detection: base64 JSON and multipart upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facerec.api.convert import face_out, image_info
from facerec.api.deps import StateDep
from facerec.api.schemas.common import ERROR_RESPONSES, IMAGE_ERRORS
from facerec.api.schemas.detection import (
    DetectionOptionsIn,
    DetectionRequest,
    DetectionResponse,
)
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.domain.timing import StageTimer
from facerec.state import AppState

router = APIRouter(
    prefix="/api/face-detection",
    tags=["Face detection"],
    responses=ERROR_RESPONSES,
    route_class=OffloadedJSONRoute,
)


async def _detect(
    state: AppState,
    source: ImageSource,
    body: DetectionOptionsIn,
    filename: str | None = None,
) -> DetectionResponse:
    timer = StageTimer(state.metrics.stage)
    options = state.queries.all_faces_options(
        detector=body.model_name,
        conf_threshold=body.conf_threshold,
        iou_threshold=body.iou_threshold,
        max_faces=body.max_faces,
        min_quality=body.min_quality_threshold,
        liveness=body.check_liveness,
    )
    data = await image_bytes(source, state.settings.limits)
    result = await state.queries.analyse(data, options, timer)
    if result.filtered_low_quality:
        state.metrics.faces_filtered.inc(result.filtered_low_quality)
    faces = [face_out(f, body.return_landmarks) for f in result.probes]
    return DetectionResponse(
        faces_detected=len(faces),
        faces=faces,
        faces_filtered_low_quality=result.filtered_low_quality,
        model_used=result.detector,
        processing_time=round(timer.total, 4),
        timings={k: round(v, 4) for k, v in timer.stages.items()},
        image_info=image_info(result.image),
        filename=filename,
    )


@router.post(
    "/detect",
    response_model=DetectionResponse,
    summary="Detect faces (base64 JSON)",
    description="Finds every face of a base64 image. Per face: the box, the detector's "
    "confidence, the 5-point landmarks (with `return_landmarks`), the quality score "
    "(0-100) with its factors and `reasons`, and a liveness verdict with "
    "`check_liveness`. Boxes and landmarks are in pixels of the EXIF-upright "
    "original; faces under `min_quality_threshold` are left out and counted in "
    "`faces_filtered_low_quality`. Scope `detect`. Errors (full table: "
    "docs/errors.md): " + IMAGE_ERRORS + "; 503 `liveness_unavailable`.",
)
async def detect(body: DetectionRequest, state: StateDep) -> DetectionResponse:
    return await _detect(state, body.image_base64, body)


@router.post(
    "/detect-upload",
    response_model=DetectionResponse,
    summary="Detect faces (multipart upload)",
    description="The same as `POST /api/face-detection/detect` with the image uploaded as "
    "multipart form data; the answer adds `filename`. Form fields: `file` (the image: "
    "JPG, PNG, BMP, TIFF or WEBP, recognised by content; the file name is ignored), "
    "`model_name` (detector, default `auto`), `conf_threshold` (0-1, default 0.5), "
    "`iou_threshold` (0-1, default 0.4), `max_faces` (1-1000, default 50), "
    "`min_quality_threshold` (0-100, default 40), `return_landmarks` (default false), "
    "`check_liveness` (default false). Scope `detect`. Errors (full table: "
    "docs/errors.md): " + IMAGE_ERRORS + "; 503 `liveness_unavailable`.",
)
async def detect_upload(
    state: StateDep,
    file: Annotated[UploadFile, File(description="JPG, PNG, BMP, TIFF or WEBP")],
    model_name: Annotated[str, Form()] = "auto",
    conf_threshold: Annotated[float, Form(ge=0.0, le=1.0)] = 0.5,
    iou_threshold: Annotated[float, Form(ge=0.0, le=1.0)] = 0.4,
    max_faces: Annotated[int, Form(ge=1, le=1000)] = 50,
    min_quality_threshold: Annotated[float, Form(ge=0.0, le=100.0)] = 40.0,
    return_landmarks: Annotated[bool, Form()] = False,
    check_liveness: Annotated[bool, Form()] = False,
) -> DetectionResponse:
    body = DetectionOptionsIn(
        model_name=model_name,
        conf_threshold=conf_threshold,
        iou_threshold=iou_threshold,
        max_faces=max_faces,
        min_quality_threshold=min_quality_threshold,
        return_landmarks=return_landmarks,
        check_liveness=check_liveness,
    )
    return await _detect(state, file, body, file.filename)
