"""Suggested new persons: unknown photo faces of one (collection, embedding space) clustered
(:mod:`facerec.domain.clustering`, incrementally as photos arrive, see
:meth:`~facerec.domain.photo_service_base.PhotoServiceBase._cluster`). A suggestion is accepted
(a new person with those faces enrolled, one transaction) or dismissed (never suggested again).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facerec.domain import clustering
from facerec.domain.photo_service_base import PhotoServiceBase, new_face_of
from facerec.domain.tenancy import TenantScope
from facerec.errors import NotFoundError
from facerec.inference.base import FaceEmbedder
from facerec.storage.models import NewPerson, new_id
from facerec.storage.photo_records import PhotoFace
from facerec.values import Face, Person, qualify


@dataclass(frozen=True)
class Suggestion:
    id: str
    collection: str
    space: str
    faces: list[PhotoFace]
    cohesion: float


class PersonSuggestionService(PhotoServiceBase):
    """Suggested new persons: listed, accepted, dismissed."""

    async def suggestions(self, scope: TenantScope, collection: str | None) -> list[Suggestion]:
        keys = await self._collections(scope, collection)
        faces = await self.repository.clustered_faces(collections=keys)
        return await self._suggestions(faces)

    async def accept(
        self,
        scope: TenantScope,
        suggestion_id: str,
        *,
        name: str,
        person_id: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[Person, list[Face]]:
        """A suggestion becomes a new person whose faces are the suggestion's (one write)."""
        suggestion = await self._suggestion(scope, suggestion_id)
        photo = await self.repository.get_photo(suggestion.faces[0].photo_id)
        await self._ensure_space(photo)
        key = scope.person_key(person_id) if person_id else qualify(scope.tenant, new_id())
        create = NewPerson(
            name=name, collection=suggestion.collection, id=key, metadata=dict(metadata or {})
        )
        shas = await self._image_shas([f.photo_id for f in suggestion.faces])
        enrolled = [(f, new_face_of(f, shas.get(f.photo_id))) for f in suggestion.faces]
        person, faces = await self.repository.enroll_faces(key, enrolled, create=create)
        await self._enrolled(person.id)
        return person, faces

    async def dismiss(self, scope: TenantScope, suggestion_id: str) -> int:
        suggestion = await self._suggestion(scope, suggestion_id)
        await self.repository.exclude([f.id for f in suggestion.faces])
        return len(suggestion.faces)

    async def _collections(self, scope: TenantScope, collection: str | None) -> list[str]:
        if collection is not None:
            key = await self.persons.collection_key(scope, collection)
            await self.identification.repository.get_collection(key)  # 404 for another tenant
            return [key]
        return [c.name for c in await self.persons.list_collections(scope)]

    async def _suggestions(self, faces: Sequence[PhotoFace]) -> list[Suggestion]:
        groups: dict[str, list[PhotoFace]] = defaultdict(list)
        for face in faces:
            if face.cluster_id is not None and face.embedding is not None:
                groups[face.cluster_id].append(face)
        result = []
        embedders = await self._embedders({f.photo_id for f in faces})
        for cluster_id, members in groups.items():
            if len(members) < 2:
                continue
            embedder = embedders.get(members[0].photo_id)
            vectors = np.stack([m.embedding for m in members if m.embedding is not None])
            cohesion = (
                clustering.cohesion(vectors, embedder.metric, embedder.similarity)
                if embedder is not None
                else float("nan")
            )
            first = members[0]
            result.append(
                Suggestion(cluster_id, first.collection, first.space or "", members, cohesion)
            )
        return sorted(result, key=lambda s: (-len(s.faces), s.id))

    async def _suggestion(self, scope: TenantScope, suggestion_id: str) -> Suggestion:
        keys = await self._collections(scope, None)
        faces = await self.repository.clustered_faces(collections=keys, cluster_id=suggestion_id)
        found = await self._suggestions(faces)
        if not found:
            raise NotFoundError(
                f"suggestion {suggestion_id!r} not found", code="suggestion_not_found"
            )
        return found[0]

    async def _embedders(self, photo_ids: set[str]) -> dict[str, FaceEmbedder]:
        names = await self.repository.photo_embedders(sorted(photo_ids))
        return {p: self.queries.embedder(name) for p, name in names.items()}

    async def _image_shas(self, photo_ids: Sequence[str]) -> dict[str, str]:
        return await self.repository.photo_image_shas(sorted(set(photo_ids)))
