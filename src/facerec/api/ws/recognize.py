"""``/ws/recognize``: live video, every face of every frame identified, tracked and named by
voting (README, "Live video"; wire rules in :mod:`facerec.api.ws.protocol`, the config turned
into a session in :mod:`facerec.api.ws.session`, the server's messages in
:mod:`facerec.api.ws.messages`).

Two loops per socket (:class:`~facerec.api.ws.stream.RecognizeStream`). The receive loop
reads every message at once, checks a frame's format and size from its header and puts it into
a one-slot mailbox, where a newer frame replaces a waiting one (counted as dropped): memory per
socket stays bounded by a few messages whatever the client sends. The processing loop takes the
newest frame at most ``max_fps`` times a second and runs it through
:class:`~facerec.domain.streams.StreamSession` in the shared bounded executor; when that
executor is full the frame is dropped and counted, never queued, so a fast or slow client never
stalls other sockets or REST calls.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from facerec.api.auth import AUTHORIZE, authenticate, scope_for
from facerec.api.errors import envelope
from facerec.api.schemas.common import ERROR_RESPONSES, ErrorResponse
from facerec.api.ws.protocol import (
    INTERNAL_ERROR,
    POLICY_VIOLATION,
    ClientGoneError,
    CloseStreamError,
)
from facerec.api.ws.stream import RecognizeStream
from facerec.auth.principal import Principal
from facerec.domain.tenancy import TenantScope
from facerec.errors import (
    FaceRecError,
)
from facerec.state import AppState

logger = logging.getLogger(__name__)

PATH = "/ws/recognize"
router = APIRouter(tags=["Live video"])


@router.get(
    PATH,
    status_code=426,
    response_model=ErrorResponse,
    responses={status: ERROR_RESPONSES[status] for status in (401, 403, 429)},
    summary="Live video recognition (WebSocket only)",
    description="Connect with a WebSocket client (scope `recognize`; key in `Authorization` or "
    "`X-API-Key`). Send a JSON config, then frames as binary JPEG/PNG messages (or "
    '`{"image_base64": ...}`); each processed frame answers `{"type": "result", "frame", '
    '"faces": [{"track_id", "bbox", "person_id", "person_name", "similarity", "decided", '
    '"unknown", "votes"}], "dropped", "processing_time"}`. A bad frame answers an `error` '
    "message and the socket stays open (`unsupported_format`, `invalid_base64`, `invalid_frame`, "
    "`frame_too_large`). Close codes: 1003 protocol violation (`config_expected`, "
    "`invalid_json`, `unknown_message_type`), 1008 handshake refused (no key or no `recognize` "
    "scope), 1009 `message_too_big`, 4400 `invalid_config`, 4403 `collection_forbidden`, 4404 "
    "`collection_not_found`, 4408 `idle_timeout`, 4503 not ready or liveness unavailable. "
    "A plain GET answers 426 `upgrade_required`.",
    dependencies=[AUTHORIZE],
)
async def recognize_stream_info() -> JSONResponse:
    response = envelope(
        426, "upgrade_required", f"{PATH} is a WebSocket endpoint: connect with a WebSocket client"
    )
    response.headers["Upgrade"] = "websocket"
    return response


@router.websocket(PATH)
async def recognize_stream(websocket: WebSocket) -> None:
    state: AppState | None = getattr(websocket.app.state, "facerec", None)
    principal = getattr(websocket.state, "principal", None)
    try:
        if not isinstance(principal, Principal):  # no AccessMiddleware in front of this app
            principal = await authenticate(state, websocket.headers, PATH)
    except FaceRecError as exc:
        await websocket.close(POLICY_VIOLATION, exc.code)
        return
    if state is None or not principal.has_scope(scope_for("GET", PATH)):
        await websocket.close(POLICY_VIOLATION, "insufficient_scope")
        return
    await websocket.accept()
    stream = RecognizeStream(websocket, state, TenantScope.of(principal))
    try:
        await stream.run()
    except ClientGoneError:
        pass
    except CloseStreamError as closed:
        await stream.close(closed)
    except Exception:
        logger.exception("stream %s failed", PATH)
        await stream.close(CloseStreamError(INTERNAL_ERROR, "internal_error", "unexpected error"))
