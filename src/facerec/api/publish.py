"""Identification events of the REST routes (the bus delivers them to MQTT and webhooks).

Only ids, names, scores and boxes: never an image or an embedding.
"""

from __future__ import annotations

from facerec.api.schemas.common import BoundingBox
from facerec.api.schemas.recognition import MatchOut
from facerec.domain.tenancy import TenantScope
from facerec.events.bus import IDENTIFICATION, Event
from facerec.state import AppState


def publish_identification(
    state: AppState,
    scope: TenantScope,
    collection: str,
    match: MatchOut,
    bbox: BoundingBox,
    *,
    source: str,
    face_index: int = 0,
) -> None:
    if not state.events.enabled:
        return
    state.events.publish(
        Event(
            IDENTIFICATION,
            tenant=scope.tenant,
            collection=collection,
            data={
                "source": source,
                "person_id": match.person_id,
                "person_name": match.person_name,
                "similarity": match.similarity,
                "face_index": face_index,
                "bbox": bbox.model_dump(),
            },
        )
    )
