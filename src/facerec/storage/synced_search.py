"""``search`` and ``search_many`` of a searcher that catches up with the change log first.

The in-process registry and the Milvus searcher both apply other processes' changes (``sync``)
before answering, so a write on any replica is seen by the next search on every other one;
pgvector's searcher, whose index is the database, follows the log only to report them. A batch
of queries (a batch's duplicate checks) catches up once for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from facerec.storage.models import SearchHit


class SyncedSearch(ABC):
    applies_change_log = True

    @abstractmethod
    async def sync(self) -> int:
        """Apply the changes other processes made since the last call; how many."""

    @abstractmethod
    async def _search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int
    ) -> list[SearchHit]:
        """One search on what this process holds now (no catching up)."""

    async def search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int = 1
    ) -> list[SearchHit]:
        await self.sync()
        return await self._search(collection, space, query, k)

    async def search_many(
        self, collection: str, space: str, queries: Sequence[NDArray[np.float32]], k: int = 1
    ) -> list[list[SearchHit]]:
        await self.sync()
        return [await self._search(collection, space, query, k) for query in queries]
