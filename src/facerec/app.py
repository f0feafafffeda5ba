"""The FastAPI application: ``create_app(settings)``.

The lifespan builds :class:`~facerec.state.AppState` and starts initialisation (migrations, model
preload) in the background; until it finishes every API route answers 503 and ``/ready`` says so,
while ``/health`` already answers. Everything is closed on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from facerec import __version__
from facerec.api import ws
from facerec.api.auth import AUTHORIZE, install_auth
from facerec.api.errors import install_error_handlers
from facerec.api.middleware import install_middleware
from facerec.api.routes import (
    admin,
    bulk_enrollment,
    console,
    detection,
    enrollment,
    liveness,
    migrations,
    persons,
    photos,
    recognition,
    suggestions,
    system,
    verification,
)
from facerec.api.uploads import keep_uploads_in_memory
from facerec.cache.allocator import trim_periodically, tune_allocator
from facerec.config import Settings
from facerec.lifecycle import (
    build_state,
    close_storage,
    idle_unloader,
    initialise,
    migration_watch,
)
from facerec.logging_setup import configure_logging

DESCRIPTION = """
Self-hosted face recognition: detection with 5-point landmarks and quality, enrollment, 1:N
identification, 1:1 verification and liveness.

Every error answers with one envelope and a stable code:
`{"success": false, "error": {"code": "invalid_image", "message": "...", "details": {}}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_allocator(settings.memory)  # before the executor's threads exist
        state = build_state(settings)
        app.state.facerec = state
        state.events.start()  # MQTT connects and webhooks open in the background
        tasks = [
            asyncio.create_task(initialise(state)),
            asyncio.create_task(idle_unloader(state)),
            asyncio.create_task(migration_watch(state)),
            asyncio.create_task(trim_periodically(settings.memory.malloc_trim_interval_s)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.ready = False
            for manager in state.model_managers:
                manager.close()  # batches being gathered run now; later model calls get 503
            state.executor.shutdown()
            for manager in state.model_managers:
                manager.unload_all()
            await state.events.close()  # delivers what is queued (at most 5 s), then disconnects
            await close_storage(state)

    app = FastAPI(
        title="facerec",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.facerec = None
    install_error_handlers(app)
    # Every route's scope: facerec.api.auth.ROUTE_SCOPES.
    routers = (
        system,
        detection,
        enrollment,
        bulk_enrollment,
        recognition,
        verification,
        persons,
        photos,
        suggestions,
        liveness,
        admin,
        console,
    )
    for module in (*routers, migrations):
        app.include_router(module.router, dependencies=[AUTHORIZE])
    # The WebSocket route checks its scope itself (``authorize`` takes an HTTP request).
    app.include_router(ws.router)

    install_auth(app, settings)
    install_middleware(app, settings)
    keep_uploads_in_memory(settings.limits.max_upload_bytes)

    return app


def serve_app() -> FastAPI:
    """The factory ``facerec serve`` gives uvicorn: each worker process configures logging
    (console + rotating file) before building its app."""
    settings = Settings()
    configure_logging(settings.server)
    return create_app(settings)
