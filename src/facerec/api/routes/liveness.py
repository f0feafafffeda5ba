"""Anti-spoofing: is each face in the image a live person or a presentation attack?"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile

from facerec.api.convert import bbox_out, image_info
from facerec.api.deps import StateDep
from facerec.api.schemas.common import ERROR_RESPONSES, IMAGE_ERRORS
from facerec.api.schemas.liveness import LivenessFace, LivenessRequest, LivenessResponse
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.domain.timing import StageTimer
from facerec.state import AppState

router = APIRouter(
    prefix="/api/face-antispoofing",
    tags=["Anti-spoofing"],
    responses=ERROR_RESPONSES,
    route_class=OffloadedJSONRoute,
)


async def _check(
    state: AppState,
    source: ImageSource,
    *,
    detector: str,
    conf_threshold: float,
    max_faces: int,
    threshold: float | None,
    filename: str | None = None,
) -> LivenessResponse:
    timer = StageTimer(state.metrics.stage)
    options = state.queries.all_faces_options(
        detector=detector,
        conf_threshold=conf_threshold,
        max_faces=max_faces,
        liveness=True,
        liveness_threshold=threshold,
    )
    data = await image_bytes(source, state.settings.limits)
    result = await state.queries.analyse(data, options, timer)
    faces = [
        LivenessFace(
            bbox=bbox_out(face.detection.bbox),
            confidence=round(face.detection.score, 4),
            is_live=verdict.is_live,
            live_score=round(verdict.live_score, 4),
            threshold=verdict.threshold,
            model_used=verdict.model,
            per_model={k: round(v, 4) for k, v in verdict.per_model.items()},
            reason=verdict.reason,
        )
        for face in result.probes
        if (verdict := face.liveness) is not None
    ]
    return LivenessResponse(
        faces_detected=len(faces),
        faces=faces,
        model_used=options.liveness or "",
        detector_used=result.detector,
        processing_time=round(timer.total, 4),
        timings={k: round(v, 4) for k, v in timer.stages.items()},
        image_info=image_info(result.image),
        filename=filename,
    )


@router.post(
    "/detect",
    response_model=LivenessResponse,
    summary="Liveness of every face (JSON)",
    description="Passive anti-spoofing: for every face, `is_live`, `live_score` (0-1), the "
    "`threshold` (default `FACEREC_LIVENESS__THRESHOLD`, 0.4), per-model scores and "
    "the box; `reason: insufficient_context` when the face fills the image (no "
    "verdict on a tight crop). It does not stop masks, deepfakes or injected video. "
    "Scope `detect`. Errors: 503 `liveness_unavailable` (the MiniFASNet pack is not "
    "installed: `facerec models pull minifasnet`); " + IMAGE_ERRORS + ".",
)
async def detect(body: LivenessRequest, state: StateDep) -> LivenessResponse:
    return await _check(
        state,
        body.image_base64,
        detector=body.detector,
        conf_threshold=body.conf_threshold,
        max_faces=body.max_faces,
        threshold=body.threshold,
    )


@router.post(
    "/detect-upload",
    response_model=LivenessResponse,
    summary="Liveness of every face (multipart)",
    description="The same as `POST /api/face-antispoofing/detect` with the image uploaded. Form "
    "fields: `file` (the image: JPG, PNG, BMP, TIFF or WEBP, recognised by content; "
    "the file name is ignored), `detector` (default `auto`), `threshold` (0-1), "
    "`conf_threshold` (0-1, default 0.5), `max_faces` (1-100, default 20). Scope "
    "`detect`. Errors: 503 `liveness_unavailable` (the MiniFASNet pack is not "
    "installed: `facerec models pull minifasnet`); " + IMAGE_ERRORS + ".",
)
async def detect_upload(
    state: StateDep,
    file: Annotated[UploadFile, File()],
    detector: Annotated[str, Form()] = "auto",
    threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    conf_threshold: Annotated[float, Form(ge=0.0, le=1.0)] = 0.5,
    max_faces: Annotated[int, Form(ge=1, le=100)] = 20,
) -> LivenessResponse:
    return await _check(
        state,
        file,
        detector=detector,
        conf_threshold=conf_threshold,
        max_faces=max_faces,
        threshold=threshold,
        filename=file.filename,
    )
