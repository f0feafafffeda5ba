"""Periodic snapshots: count unsaved changes and save every so many changes or seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from facerec.storage.index_options import IndexOptions

log = logging.getLogger(__name__)


class SnapshotWriter:
    """Follows the log (``sync``) and calls ``save`` when enough changes (or time) have
    accumulated since the last save."""

    def __init__(
        self,
        options: IndexOptions,
        *,
        sync: Callable[[], Awaitable[int]],
        save: Callable[[], Awaitable[int]],
    ) -> None:
        self._options = options
        self._sync = sync
        self._save = save
        self._task: asyncio.Task[None] | None = None
        self.unsaved = 0  # changes applied (and graphs built) since the last save
        self.saved_at = time.monotonic()

    def changed(self, count: int = 1) -> None:
        self.unsaved += count

    def saved(self) -> None:
        self.unsaved = 0
        self.saved_at = time.monotonic()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _due(self) -> bool:
        options = self._options
        return self.unsaved >= options.snapshot_every_changes or (
            self.unsaved > 0 and time.monotonic() - self.saved_at >= options.snapshot_every_s
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self._options.snapshot_every_s))
            try:
                await self._sync()
                if self._due():
                    saved = await self._save()
                    log.debug("periodic index snapshot: %d written", saved)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database may be away for a while: try again later
                log.exception("periodic index snapshot failed")
