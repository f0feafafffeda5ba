"""The service's state on the configured database, without HTTP: what ``create_app``'s lifespan
builds (:func:`facerec.app.build_state`, :func:`facerec.app.open_storage`, model preload), and
closes the same way, for commands that work whether or not the service runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from facerec.config import Settings
from facerec.state import AppState


@asynccontextmanager
async def open_local(settings: Settings, *, threads: int | None = None) -> AsyncIterator[AppState]:
    """``threads``: inference threads (the executor); default: the configured ones."""
    from facerec.app import build_state, close_storage, open_storage

    if threads is not None:
        settings = settings.model_copy(deep=True)
        settings.server.executor_threads = max(1, threads)
        settings.server.max_pending_jobs = max(settings.server.max_pending_jobs, 4 * threads)
    state = build_state(settings)
    try:
        await open_storage(state)
        await asyncio.to_thread(state.models.preload, settings.models.preload)
        state.ready = True
        yield state
    finally:
        state.ready = False
        state.executor.shutdown()
        state.models.unload_all()
        await close_storage(state)
