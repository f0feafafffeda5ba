"""The server's messages on ``/ws/recognize``: domain results shaped as the JSON the client reads
(``ready``, ``result``, ``error``, ``pong``; schemas in :mod:`facerec.api.schemas.streams`).

Person ids leave with the caller's tenant prefix removed (:meth:`TenantScope.person_id`);
similarities and vote masses are rounded to four places.
"""

from __future__ import annotations

from typing import Any

from facerec.api.convert import bbox_out, liveness_out
from facerec.api.schemas.streams import (
    StreamError,
    StreamFace,
    StreamReady,
    StreamResult,
    Votes,
)
from facerec.api.ws.protocol import CloseStreamError
from facerec.config import StreamSettings
from facerec.domain.streams import FrameResult, StreamSession, TrackedFace
from facerec.domain.tenancy import TenantScope
from facerec.errors import FaceRecError


def ready(
    session: StreamSession, collection: str, fps: float, limits: StreamSettings
) -> StreamReady:
    """The answer to the config: the stream is open, with the limits it runs under."""
    analysis = session.config.analysis
    return StreamReady(
        stream_id=session.stream_id,
        collection=collection,
        model_used=analysis.embedder or "",
        detector=analysis.detector,
        max_fps=fps,
        max_message_bytes=limits.max_message_bytes,
        idle_timeout_seconds=limits.idle_timeout_seconds,
    )


def frame_result(
    number: int, result: FrameResult, dropped: int, scope: TenantScope
) -> StreamResult:
    """One processed frame: every tracked face, and the frames dropped on this socket so far."""
    return StreamResult(
        frame=number,
        faces=[stream_face(face, scope) for face in result.faces],
        dropped=dropped,
        processing_time=round(result.processing_time, 4),
    )


def stream_face(face: TrackedFace, scope: TenantScope) -> StreamFace:
    decision = face.decision
    person = decision.person_id
    return StreamFace(
        track_id=face.track_id,
        bbox=bbox_out(face.bbox),
        person_id=scope.person_id(person) if person else None,
        person_name=face.person_name,
        similarity=round(decision.similarity, 4)
        if person and decision.similarity is not None
        else None,
        decided=decision.decided,
        unknown=decision.unknown,
        votes=Votes(
            mass=round(decision.mass, 4), total=round(decision.total, 4), frames=decision.frames
        ),
        quality=round(face.probe.quality.score, 1),
        reason=face.reason,
        liveness=liveness_out(face.probe.liveness),
    )


def frame_error(number: int, exc: FaceRecError) -> StreamError:
    """A frame that was refused or failed; the socket stays open."""
    return StreamError(code=exc.code, message=exc.message, frame=number, details=exc.details)


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def config_already_set() -> StreamError:
    return StreamError(
        code="config_already_set",
        message="the config is sent once, first; open a new socket to change it",
    )


def closing_error(closed: CloseStreamError) -> StreamError:
    """The ``error`` message sent before the server closes the socket."""
    return StreamError(code=closed.code, message=closed.message, details=closed.details)
