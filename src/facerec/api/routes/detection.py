"""Face detection: base64 JSON and multipart upload."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facerec.api.convert import face_out, image_info, liveness_out
from facerec.api.deps import StateDep
from facerec.api.schemas.common import ERROR_RESPONSES
from facerec.api.schemas.detection import DetectionRequest, DetectionResponse
from facerec.api.uploads import read_upload
from facerec.domain.detection import DetectOptions
from facerec.domain.timing import StageTimer
from facerec.inference.images import decode_base64
from facerec.state import AppState

router = APIRouter(prefix="/api/face-detection", tags=["Face detection"], responses=ERROR_RESPONSES)


async def _detect(
    state: AppState,
    data: bytes,
    options: DetectOptions,
    *,
    landmarks: bool,
    liveness: bool,
    filename: str | None = None,
) -> DetectionResponse:
    timer = StageTimer(state.metrics.stage)
    if liveness:
        state.pipeline.liveness_name()  # 503 liveness_unavailable before any work
    # Liveness crops faces from the decoded pixels: it needs them at full resolution.
    result = await state.executor.run(
        state.detection.detect, data, options, timer, reduced=not liveness
    )
    if result.filtered_low_quality:
        state.metrics.faces_filtered.inc(result.filtered_low_quality)
    faces = [face_out(f, landmarks) for f in result.faces]
    if liveness and result.faces:
        detections = [f.detection for f in result.faces]
        verdicts = await state.executor.run(
            state.pipeline.liveness_of, result.image, detections, None, timer
        )
        for face, verdict in zip(faces, verdicts, strict=True):
            face.liveness = liveness_out(verdict)
    return DetectionResponse(
        faces_detected=len(faces),
        faces=faces,
        faces_filtered_low_quality=result.filtered_low_quality,
        model_used=result.model_used,
        processing_time=round(timer.total, 4),
        timings={k: round(v, 4) for k, v in timer.stages.items()},
        image_info=image_info(result.image),
        filename=filename,
    )


@router.post("/detect", response_model=DetectionResponse, summary="Detect faces (base64 JSON)")
async def detect(body: DetectionRequest, state: StateDep) -> DetectionResponse:
    data = decode_base64(body.image_base64, state.settings.limits)
    options = DetectOptions(
        model_name=body.model_name,
        conf_threshold=body.conf_threshold,
        iou_threshold=body.iou_threshold,
        max_faces=body.max_faces,
        min_quality=body.min_quality_threshold,
    )
    return await _detect(
        state, data, options, landmarks=body.return_landmarks, liveness=body.check_liveness
    )


@router.post(
    "/detect-upload", response_model=DetectionResponse, summary="Detect faces (multipart upload)"
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
    data = await read_upload(file, state.settings.limits.max_upload_bytes)
    options = DetectOptions(
        model_name=model_name,
        conf_threshold=conf_threshold,
        iou_threshold=iou_threshold,
        max_faces=max_faces,
        min_quality=min_quality_threshold,
    )
    return await _detect(
        state,
        data,
        options,
        landmarks=return_landmarks,
        liveness=check_liveness,
        filename=file.filename,
    )
