"""Messages of the ``/ws/recognize`` WebSocket (see README, "Live video")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from facerec.api.schemas.common import BoundingBox, LivenessOut
from facerec.domain.open_set import DEFAULT_MIN_MARGIN


class StreamConfigIn(BaseModel):
    """The first message of a socket: how its frames are analysed and identified."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    type: Literal["config"] = "config"
    collection: str = "default"
    model_name: str = "auto"
    detector: str = "auto"
    target_fpir: float | None = Field(None, gt=0.0, lt=1.0)
    similarity_threshold: float | None = Field(None, ge=0.0, le=1.0)
    min_margin: float = Field(DEFAULT_MIN_MARGIN, ge=0.0, le=1.0)
    min_quality: float = Field(0.0, ge=0.0, le=100.0)
    max_faces: int = Field(20, ge=1, le=50)
    max_fps: float | None = Field(
        None, gt=0.0, description="Frames processed per second (at most streams.max_fps)."
    )
    check_liveness: bool | None = None
    source: str | None = Field(
        None, max_length=100, description="A label for the camera, echoed in presence events."
    )


class FrameIn(BaseModel):
    """A frame sent as JSON text (binary messages are frames as they are)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["frame"] = "frame"
    image_base64: str


class StreamReady(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    type: Literal["ready"] = "ready"
    stream_id: str
    collection: str
    model_used: str
    detector: str
    max_fps: float
    max_message_bytes: int
    idle_timeout_seconds: float


class Votes(BaseModel):
    mass: float = Field(description="Vote mass of the leading (or decided) identity.")
    total: float = Field(description="Vote mass of every frame in the track's window.")
    frames: int = Field(description="Frames that voted, in the window.")


class StreamFace(BaseModel):
    track_id: int
    bbox: BoundingBox
    person_id: str | None
    person_name: str | None
    similarity: float | None
    decided: bool = Field(description="False while the track's votes are still gathered.")
    unknown: bool = Field(description="Decided, and not anyone of the collection.")
    votes: Votes
    quality: float
    reason: str | None = Field(
        None, description="Why this frame's face did not vote: too_small, low_quality, spoof..."
    )
    liveness: LivenessOut | None = None


class StreamResult(BaseModel):
    type: Literal["result"] = "result"
    frame: int = Field(description="The frame's number on this socket, counting from 1.")
    faces: list[StreamFace]
    dropped: int = Field(description="Frames dropped so far on this socket (newest wins).")
    processing_time: float


class StreamError(BaseModel):
    type: Literal["error"] = "error"
    code: str
    message: str
    frame: int | None = None
    details: dict[str, object] = Field(default_factory=dict)
