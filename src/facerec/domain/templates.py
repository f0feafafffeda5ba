"""Persons' templates (every face's vector and quality in one embedding space), read through a
cache of this process: a recognize scores its nearest persons from all their faces, and reading
them from the database cost ~3 ms of event-loop time per request.

The cache is this process's memory only (never Redis: embeddings stay where the index already
holds them), bounded by bytes, keyed ``tpl:{space}:{person id}`` with the person's tag
``p:{id}``, and purged with the person's other cached copies: by every erasure and edit of this
process, and by the change log that every search applies first (changes of other processes).
A template read from the database while a purge ran is handed back but not kept, so a purge
always wins over a read that began before it. Only searchers that apply the change log allow the
cache (the service builds every backend so: in-process, Milvus, pgvector); with one that reads
none, the faces are read from the database at every recognize
(:meth:`facerec.domain.persons.PersonService.templates`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facerec.cache.base import person_tag, purge_erasure
from facerec.cache.memory import MemoryCache
from facerec.values import Erasure, Face

# The default byte budget (FACEREC_CACHE__TEMPLATE_MAX_MB): ~30,000 faces of 128-D, ~8,000 of
# 512-D.
TEMPLATE_CACHE_BYTES = 16 * 1024 * 1024

FacesOf = Callable[[list[str], str], Awaitable[list[Face]]]


@dataclass(frozen=True)
class Template:
    """One person's faces in one space: a (faces, dim) float32 matrix and each face's quality."""

    vectors: NDArray[np.float32]
    qualities: NDArray[np.float64]

    def to_bytes(self) -> bytes:
        return self.vectors.astype("<f4").tobytes() + self.qualities.astype("<f8").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes, dim: int) -> Template:
        faces = len(raw) // (dim * 4 + 8)
        split = faces * dim * 4
        # Read-only views of the cached bytes (immutable), not copies: scoring only reads them.
        vectors = np.frombuffer(raw, "<f4", count=faces * dim).reshape(faces, dim)
        qualities = np.frombuffer(raw, "<f8", offset=split, count=faces)
        return cls(vectors.astype(np.float32, copy=False), qualities.astype(np.float64, copy=False))


def templates_of(faces: Sequence[Face]) -> dict[str, Template]:
    """Templates of faces as the repository lists them (faces without an embedding left out)."""
    vectors: dict[str, list[NDArray[np.float32]]] = {}
    qualities: dict[str, list[float]] = {}
    for face in faces:
        if face.embedding is not None:
            vectors.setdefault(face.person_id, []).append(face.embedding)
            qualities.setdefault(face.person_id, []).append(face.quality)
    return {
        person: Template(
            np.stack(held).astype(np.float32), np.array(qualities[person], dtype=np.float64)
        )
        for person, held in vectors.items()
    }


class TemplateCache:
    def __init__(self, ttl: float, max_bytes: int = TEMPLATE_CACHE_BYTES) -> None:
        self.ttl = ttl
        self.store = MemoryCache(1_000_000, ttl, max_bytes=max_bytes)
        self._generation = 0  # moved by every purge: a read begun before one is not kept

    async def templates(
        self, person_ids: Sequence[str], space: str, dim: int, faces_of: FacesOf
    ) -> dict[str, Template]:
        """The templates of these persons in ``space`` (absent: no face there any more)."""
        found: dict[str, Template] = {}
        missing: list[str] = []
        for person in dict.fromkeys(person_ids):
            raw = await self.store.get(_key(space, person))
            if raw is None:
                missing.append(person)
            else:
                found[person] = Template.from_bytes(raw, dim)
        if missing:
            generation = self._generation
            read = templates_of(await faces_of(missing, space))
            found.update(read)
            if generation == self._generation:
                for person, template in read.items():
                    await self.store.set(
                        _key(space, person),
                        template.to_bytes(),
                        ttl=self.ttl,
                        tags=[person_tag(person)],
                    )
        return found

    async def purge(self, erasure: Erasure) -> None:
        self._generation += 1
        await purge_erasure(self.store, erasure)

    async def purge_all(self) -> None:
        self._generation += 1
        await self.store.delete_prefix("")


def _key(space: str, person_id: str) -> str:
    return f"tpl:{space}:{person_id}"
