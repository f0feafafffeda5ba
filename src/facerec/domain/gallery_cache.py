"""What the gallery keeps in the cache: person records (key ``person:{id}``, tag ``p:{id}``),
recent image results (key ``img:{sha256}:{detector}:{embedder+mode}``, tag ``i:{sha256}``) and
persons' templates (:mod:`facerec.domain.templates`, in this process only).

All are purged by erasure (:func:`facerec.cache.base.purge_erasure`): a person's record and
template, and the results of every image their faces came from.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import asdict
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from facerec.cache.base import (
    Cache,
    get_json,
    image_tag,
    person_key,
    person_tag,
    purge_erasure,
    set_json,
)
from facerec.cache.memory import MemoryCache
from facerec.domain.probes import Analysis, FaceProbe, ImageMeta
from facerec.domain.templates import TEMPLATE_CACHE_BYTES, TemplateCache
from facerec.inference.quality import QualityReport
from facerec.values import BBox, Detection, Erasure, Person

# The default recent-results cache's byte budget (the service sets cache.query_max_mb).
QUERY_CACHE_BYTES = 16 * 1024 * 1024


class PersonCache:
    """Person records in the cache (key ``person:{id}``, tag ``p:{id}``), purged on change, and
    recent query results in ``queries``: a cache of this process only (never Redis), so a
    probe's embedding never sits in a shared cache; erasure purges both."""

    def __init__(
        self,
        cache: Cache,
        ttl: float,
        *,
        queries: Cache | None = None,
        query_ttl: float = 300.0,
        template_bytes: int = TEMPLATE_CACHE_BYTES,
    ) -> None:
        self.cache = cache
        self.ttl = ttl
        self.queries = (
            queries
            if queries is not None
            else MemoryCache(1000, query_ttl, max_bytes=QUERY_CACHE_BYTES)
        )
        self.query_ttl = query_ttl
        self.templates = TemplateCache(ttl, template_bytes)

    async def get_person(self, person_id: str) -> Person | None:
        raw = await get_json(self.cache, person_key(person_id))
        if not isinstance(raw, dict):
            return None
        try:
            return Person(
                id=raw["id"],
                name=raw["name"],
                collection=raw["collection"],
                employee_id=raw["employee_id"],
                department=raw["department"],
                position=raw["position"],
                metadata=raw["metadata"],
                created_at=datetime.fromisoformat(raw["created_at"]),
                updated_at=datetime.fromisoformat(raw["updated_at"]),
                face_count=int(raw["face_count"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    async def put_person(self, person: Person) -> None:
        value = asdict(person)
        value["metadata"] = dict(person.metadata)
        value["created_at"] = person.created_at.isoformat()
        value["updated_at"] = person.updated_at.isoformat()
        await set_json(
            self.cache, person_key(person.id), value, ttl=self.ttl, tags=[person_tag(person.id)]
        )

    async def purge(self, erasure: Erasure) -> None:
        await self.templates.purge(erasure)
        await purge_erasure(self.queries, erasure)
        await purge_erasure(self.cache, erasure)

    async def get_analysis(self, key: str) -> Analysis | None:
        """A recent query photo's subject (detection, quality, embedding) by image hash and
        models."""
        raw = await get_json(self.queries, key)
        if not isinstance(raw, dict):
            return None
        try:
            marks = raw["landmarks"]
            detection = Detection(
                BBox(*(float(v) for v in raw["bbox"])),
                float(raw["score"]),
                None if marks is None else np.asarray(marks, dtype=np.float32),
            )
            quality = QualityReport(
                score=float(raw["quality"]["score"]),
                factors=dict(raw["quality"]["factors"]),
                measurements=dict(raw["quality"]["measurements"]),
                reasons=tuple(raw["quality"]["reasons"]),
            )
            probe = FaceProbe(
                detection=detection,
                quality=quality,
                index=int(raw["index"]),
                prominence=float(raw["prominence"]),
                embedding=_vector(raw["embedding"]),
            )
            return Analysis(
                probes=[probe],
                image=ImageMeta(**raw["image"]),
                image_sha256=raw["image_sha256"],
                detector=raw["detector"],
                embedder=raw["embedder"],
                space=raw["space"],
                faces_in_image=int(raw["faces_in_image"]),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            return None

    async def put_analysis(self, key: str, analysis: Analysis) -> None:
        probe = analysis.subject
        box = probe.detection.bbox
        marks = probe.detection.landmarks
        value = {
            "bbox": [box.x1, box.y1, box.x2, box.y2],
            "score": probe.detection.score,
            "landmarks": None if marks is None else marks.tolist(),
            "quality": {
                "score": probe.quality.score,
                "factors": probe.quality.factors,
                "measurements": probe.quality.measurements,
                "reasons": list(probe.quality.reasons),
            },
            "index": probe.index,
            "prominence": probe.prominence,
            # float32 bytes in base64: a quarter of the JSON numbers' size, and exact.
            "embedding": base64.b64encode(probe.vector.astype("<f4").tobytes()).decode(),
            "image": asdict(analysis.image),
            "embedder": analysis.embedder,
            "space": analysis.space,
            "detector": analysis.detector,
            "image_sha256": analysis.image_sha256,
            "faces_in_image": analysis.faces_in_image,
        }
        tags = [image_tag(analysis.image_sha256)]
        await set_json(self.queries, key, value, ttl=self.query_ttl, tags=tags)

    async def purge_persons(self, person_ids: set[str] | None, erased: bool = True) -> None:
        """Changes any process made (read from the change log): drop this process's copies of
        those persons. When anything was erased, every recent query result goes too: the log
        does not name the erased faces' images, and a result of one of them must not outlive
        the erasure here either."""
        if person_ids is None:
            await self.templates.purge_all()
            await self.cache.delete_prefix("person:")
            await self.queries.delete_prefix("")
            return
        if erased:
            await self.queries.delete_prefix("")
        if person_ids:
            erasure = Erasure(updated_person_ids=tuple(person_ids))
            await self.templates.purge(erasure)
            await purge_erasure(self.cache, erasure)


def _vector(encoded: object) -> NDArray[np.float32]:
    if not isinstance(encoded, str):
        raise TypeError("embedding is not base64 text")
    vector = np.frombuffer(base64.b64decode(encoded, validate=True), dtype="<f4")
    return vector.astype(np.float32)  # a writable copy in native order
