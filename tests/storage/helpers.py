"""Values and helpers shared by the storage tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.config import DatabaseSettings
from facerec.storage.engine import create_engine
from facerec.storage.models import EmbeddingSpace
from facerec.storage.sql_repository import SqlGalleryRepository

L2_SPACE = EmbeddingSpace("test_l2@1", 8, "l2")
COS_SPACE = EmbeddingSpace("test_cos@1", 8, "cosine")


@dataclass
class Backend:
    kind: str  # sqlite | postgres | pgvector
    url: str
    schema: str | None
    engine: AsyncEngine
    repo: SqlGalleryRepository

    def new_engine(self) -> AsyncEngine:
        """Another engine on the same database, as a second API process would have."""
        return create_engine(DatabaseSettings(url=self.url), search_path=self.search_path)

    @property
    def search_path(self) -> str | None:
        return f"{self.schema},public" if self.schema else None

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()


def vec(seed: int, dim: int = 8) -> np.ndarray:
    """A deterministic float32 vector per seed."""
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
