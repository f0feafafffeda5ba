"""The photo faces behind suggested new persons: the unknown faces clustering works on, their
cluster labels, the faces of the suggestions, and faces excluded for good (dismissed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import and_, update
from sqlalchemy.sql.elements import ColumnElement

from facerec.storage.photo_reads import PhotoReads
from facerec.storage.photo_records import PhotoFace
from facerec.storage.photo_schema import photo_faces
from facerec.storage.sql_support import read_connection, write_transaction


class PhotoSuggestions(PhotoReads):
    """Cluster labels of unknown photo faces; every method is one transaction."""

    async def unknown_faces(self, collection: str, space: str) -> list[PhotoFace]:
        """The faces clustering works on: unknown, usable, not excluded, with embeddings."""
        async with read_connection(self._engine) as conn:
            return await self._load_faces(
                conn,
                and_(
                    photo_faces.c.collection == collection,
                    photo_faces.c.space == space,
                    photo_faces.c.person_id.is_(None),
                    photo_faces.c.embedding.isnot(None),
                    photo_faces.c.excluded == 0,
                    photo_faces.c.reason.is_(None),
                ),
                with_embeddings=True,
            )

    async def set_clusters(self, labels: Mapping[str, str | None]) -> None:
        """Face id → suggestion id (None: in no suggestion)."""
        if not labels:
            return
        async with write_transaction(self._engine) as conn:
            for face_id, cluster_id in labels.items():
                await conn.execute(
                    update(photo_faces)
                    .where(photo_faces.c.id == face_id, photo_faces.c.person_id.is_(None))
                    .values(cluster_id=cluster_id)
                )

    async def clustered_faces(
        self, *, collections: Sequence[str], cluster_id: str | None = None
    ) -> list[PhotoFace]:
        """Faces in suggestions (of one suggestion with ``cluster_id``), with embeddings."""
        where: list[ColumnElement[bool]] = [
            photo_faces.c.cluster_id.isnot(None),
            photo_faces.c.person_id.is_(None),
            photo_faces.c.collection.in_(list(collections)),
        ]
        if cluster_id is not None:
            where.append(photo_faces.c.cluster_id == cluster_id)
        async with read_connection(self._engine) as conn:
            return await self._load_faces(conn, and_(*where), with_embeddings=True)

    async def exclude(self, face_ids: Sequence[str]) -> None:
        """These faces are never clustered again (a dismissed suggestion)."""
        async with write_transaction(self._engine) as conn:
            await conn.execute(
                update(photo_faces)
                .where(photo_faces.c.id.in_(list(face_ids)))
                .values(cluster_id=None, excluded=1)
            )
