"""One live video stream: every face of each frame identified, followed and named by voting.

A :class:`StreamSession` belongs to one WebSocket. Each frame is analysed in the shared bounded
executor (:meth:`QueryRunner.analyse`: a full executor raises ``OverloadedError`` and the caller
drops the frame; frames are never hashed into the result cache), every face is identified at
once (:meth:`TaggingService.tag_analysis`: one identity at most once per frame), then
:class:`~facerec.domain.tracking.Tracker` gives each face its track and lets the frame's identity
vote. Presence events go to the event bus: ``track.decided`` whenever a track's identity is
decided or changes, ``presence.first_seen`` when a track is decided to be a person and
``presence.last_seen`` when that track ends (or the stream closes). Events carry ids, names,
scores and times, never images or embeddings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from facerec.domain.probes import AnalysisOptions, FaceProbe, ImageMeta
from facerec.domain.tagging import FaceTag, TaggingService, TagOptions
from facerec.domain.timing import StageTimer
from facerec.domain.tracking import Decision, Observation, Track, Tracker
from facerec.events.bus import (
    PRESENCE_FIRST_SEEN,
    PRESENCE_LAST_SEEN,
    TRACK_DECIDED,
    Event,
)
from facerec.values import BBox

MAX_NAMES = 1000


@dataclass(frozen=True)
class StreamConfig:
    tenant: str
    collection: str  # the stored collection key
    collection_name: str  # as the tenant knows it
    tag: TagOptions
    analysis: AnalysisOptions
    source: str | None = None  # the client's label for the camera, echoed in events


@dataclass(frozen=True)
class TrackedFace:
    track_id: int
    bbox: BBox
    probe: FaceProbe
    decision: Decision
    person_name: str | None
    reason: str | None  # why this frame's face could not vote (too_small, low_quality, spoof)


@dataclass(frozen=True)
class FrameResult:
    faces: list[TrackedFace]
    image: ImageMeta
    processing_time: float


class StreamSession:
    def __init__(
        self,
        *,
        tagging: TaggingService,
        config: StreamConfig,
        publish: Callable[[Event], None],
        person_id: Callable[[str], str],
        tracker: Tracker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tagging = tagging
        self.config = config
        self._publish = publish
        self._person_id = person_id  # stored key -> the id the tenant knows
        self.tracker = tracker or Tracker()
        self.clock = clock
        self.stream_id = uuid.uuid4().hex
        self._names: dict[str, str] = {}
        self._presence: dict[int, str] = {}  # track id -> the person announced as present

    async def process(self, frame: bytes, timer: StageTimer) -> FrameResult:
        """One frame: analysed, identified, tracked. Raises the analysis's typed errors
        (``OverloadedError`` when the executor is full, ``InvalidImageError`` ...)."""
        started = time.perf_counter()
        queries = self.tagging.queries
        analysis = await queries.analyse(frame, self.config.analysis, timer)
        tagging = await self.tagging.tag_analysis(analysis, self.config.tag, timer)
        observations = [self._observation(face) for face in tagging.faces]
        update = self.tracker.update(observations, self.clock())
        for track in update.decided:
            self._on_decided(track)
        for track in update.ended:
            self._on_ended(track)
        faces = [
            self._tracked(track, face)
            for track, face in zip(update.tracks, tagging.faces, strict=True)
        ]
        return FrameResult(faces, analysis.image, time.perf_counter() - started)

    def close(self) -> None:
        """The stream ended: every track ends with it."""
        for track in self.tracker.end_all():
            self._on_ended(track)

    # --- frames to observations ---------------------------------------------------------------

    def _observation(self, face: FaceTag) -> Observation:
        probe = face.probe
        reason = _no_vote(face)
        best = face.best
        if best is not None and best.person is not None:
            if len(self._names) >= MAX_NAMES:
                self._names.clear()
            self._names[best.person_id] = best.person.name
        similarity = best.similarity if best else None
        if best is None and face.candidates:
            similarity = face.candidates[0].similarity
        return Observation(
            bbox=probe.detection.bbox,
            quality=probe.quality.score,
            landmarks=probe.detection.landmarks,
            usable=reason is None,
            person_id=best.person_id if best else None,
            similarity=similarity,
        )

    def _tracked(self, track: Track, face: FaceTag) -> TrackedFace:
        decision = track.votes.decision()
        name = self._names.get(decision.person_id) if decision.person_id else None
        return TrackedFace(
            track.id, face.probe.detection.bbox, face.probe, decision, name, _no_vote(face)
        )

    # --- events -------------------------------------------------------------------------------

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        base: dict[str, Any] = {"stream": self.stream_id, "source": self.config.source}
        self._publish(
            Event(kind, self.config.tenant, self.config.collection_name, {**base, **data})
        )

    def _person(self, key: str | None) -> dict[str, Any]:
        return {
            "person_id": self._person_id(key) if key else None,
            "person_name": self._names.get(key) if key else None,
        }

    def _on_decided(self, track: Track) -> None:
        decision = track.votes.decision()
        self._event(
            TRACK_DECIDED,
            {
                "track_id": track.id,
                **self._person(decision.person_id),
                "unknown": decision.unknown,
                "similarity": _rounded(decision.similarity),
                "votes": {"mass": round(decision.mass, 4), "total": round(decision.total, 4)},
                "first_seen": _iso(track.first_seen),
            },
        )
        before = self._presence.pop(track.id, None)
        if before is not None and before != decision.person_id:
            self._last_seen(track, before)
        if decision.person_id is not None and before != decision.person_id:
            self._presence[track.id] = decision.person_id
            self._event(
                PRESENCE_FIRST_SEEN,
                {
                    "track_id": track.id,
                    **self._person(decision.person_id),
                    "similarity": _rounded(decision.similarity),
                    "first_seen": _iso(track.first_seen),
                },
            )

    def _on_ended(self, track: Track) -> None:
        person = self._presence.pop(track.id, None)
        if person is not None:
            self._last_seen(track, person)

    def _last_seen(self, track: Track, person: str) -> None:
        self._event(
            PRESENCE_LAST_SEEN,
            {
                "track_id": track.id,
                **self._person(person),
                "first_seen": _iso(track.first_seen),
                "last_seen": _iso(track.last_seen),
                "frames": track.hits,
            },
        )


def _no_vote(face: FaceTag) -> str | None:
    if face.reason is not None:
        return face.reason
    if face.probe.embedding is None:
        return "no_embedding"
    liveness = face.probe.liveness
    if liveness is not None and not liveness.is_live:
        return liveness.reason or "spoof"
    return None


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
