"""Telling this process what any process changed in the gallery, from the change log.

Every gallery write appends change-log rows in its own transaction (:mod:`.sql_support`), and
every searcher reads the log before it answers. What the rows name is reported to
``on_persons_changed``, which purges this process's copies (person records, templates and, when
anything was erased, recent query results: :meth:`~facerec.domain.gallery_cache.PersonCache.
purge_persons`). So an erasure on any replica reaches every replica's caches before its next
search, whatever the index backend.

- :class:`ChangeNotifier`: the callback, called safely (a purge failing never breaks a search).
- :class:`ChangeFeed`: follows the log only to notify, for searchers with no index of their own
  to keep in step (pgvector answers from the database itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from facerec.storage.protocols import ERASING_OPS, Change, LogState

__all__ = ["ChangeFeed", "ChangeNotifier", "ChangeSource", "PersonsChanged"]

log = logging.getLogger(__name__)

PersonsChanged = Callable[[set[str] | None, bool], Awaitable[None]]
"""Called with the ids of persons changed by any process (None: unknown, purge all) and whether
the changes erased anything (faces, persons or collections)."""

BATCH = 5_000  # change-log rows read at a time


class ChangeSource(Protocol):
    async def log_state(self) -> LogState: ...
    async def changes_since(self, seq: int, limit: int) -> list[Change]: ...


class ChangeNotifier:
    def __init__(self, callback: PersonsChanged | None) -> None:
        self._callback = callback

    async def changed(self, batch: Sequence[Change]) -> None:
        """Report the persons a batch of the log names, and whether it erased anything."""
        persons = {c.person_id for c in batch if c.person_id}
        erased = any(c.op in ERASING_OPS for c in batch)
        if persons or erased:
            await self._call(persons, erased)

    async def unknown(self) -> None:
        """Changes were skipped (the log was pruned past us, or the database replaced)."""
        await self._call(None, True)

    async def _call(self, persons: set[str] | None, erased: bool) -> None:
        if self._callback is None:
            return
        try:
            await self._callback(persons, erased)
        except Exception:  # a cache purge failing must not break searching
            log.exception("on_persons_changed callback failed")


class ChangeFeed:
    """The change log followed from where it stood at the first :meth:`follow`."""

    def __init__(self, source: ChangeSource, notifier: ChangeNotifier) -> None:
        self._source = source
        self._notifier = notifier
        self._seq: int | None = None  # None until the first follow records the position
        self._lock = asyncio.Lock()

    async def follow(self) -> int:
        """Notify what was logged since the last call; how many rows. One cheap read when the
        log has not moved (:class:`~facerec.storage.log_probe.LogProbe`)."""
        state = await self._source.log_state()
        if state.last_seq == self._seq:
            return 0
        async with self._lock:
            state = await self._source.log_state()  # again: a follow may have run meanwhile
            seq = self._seq
            if seq is None:
                self._seq = state.last_seq
                return 0
            if state.last_seq < seq or seq < state.pruned_through:
                # Another database under the same name, or the log pruned past us.
                self._seq = state.last_seq
                await self._notifier.unknown()
                return 0
            read = 0
            while seq < state.last_seq:
                batch = await self._source.changes_since(seq, BATCH)
                if not batch:
                    break
                await self._notifier.changed(batch)
                self._seq = seq = batch[-1].seq
                read += len(batch)
            return read
