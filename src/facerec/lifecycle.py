"""Start-up and shutdown of the service's state: build it, open storage (retrying while the
database is down), load the models, and close everything again. The FastAPI lifespan
(:func:`facerec.app.create_app`) and the offline CLI (:mod:`facerec.bulk.local`) share it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from facerec import __version__
from facerec.auth.access import open_auth
from facerec.cache.factory import MiB, create_cache, create_query_cache
from facerec.config import Settings
from facerec.domain.analysis import Analyzer
from facerec.domain.detection import DetectionService
from facerec.domain.enrollment import EnrollmentService
from facerec.domain.enrollment_guards import Guards
from facerec.domain.gallery_cache import PersonCache
from facerec.domain.identification import IdentificationService
from facerec.domain.migration import GalleryMigrations, active_space_of
from facerec.domain.persons import PersonService
from facerec.domain.photos import PhotoService
from facerec.domain.queries import QueryRunner
from facerec.domain.tagging import TaggingService
from facerec.domain.verification import VerificationService
from facerec.errors import FaceRecError
from facerec.events.factory import build_event_bus
from facerec.executor import InferenceExecutor
from facerec.inference.manager import ModelManager, PrefixedEvents
from facerec.inference.registry import build_models
from facerec.metrics import Metrics
from facerec.state import AppState, GalleryServices
from facerec.storage.engine import create_engine, is_connection_error
from facerec.storage.factory import create_searcher
from facerec.storage.gallery_migration import SqlMigrationStore
from facerec.storage.migrate import upgrade_database
from facerec.storage.photos import PhotoRepository
from facerec.storage.registry import IndexOptions
from facerec.storage.sealing import Sealer
from facerec.storage.sql_repository import SqlGalleryRepository

logger = logging.getLogger(__name__)

# Start-up with the database down: retry after 0.5 s, doubling up to every 10 s, until it answers.
STORAGE_RETRY_FIRST_S = 0.5
STORAGE_RETRY_MAX_S = 10.0
# ``auto`` preloads the embedders of at most this many collections (by name).
PRELOAD_COLLECTIONS_MAX = 256


def build_state(settings: Settings) -> AppState:
    metrics = Metrics()
    models = ModelManager(build_models(settings), settings.models, events=metrics)
    bulk_threads = settings.models.bulk_intra_op_threads
    bulk_models = None
    if bulk_threads and bulk_threads != settings.models.intra_op_threads:
        bulk_settings = settings.models.model_copy(update={"intra_op_threads": bulk_threads})
        events = PrefixedEvents(metrics, "bulk:")
        bulk_models = ModelManager(build_models(settings), bulk_settings, events=events)
    detection = DetectionService(models, settings.limits)
    executor = InferenceExecutor(settings.server.executor_threads, settings.server.max_pending_jobs)
    analyzer = Analyzer(
        models, detection, settings.liveness.threshold, settings.liveness.min_context_ratio
    )
    return AppState(
        settings=settings,
        metrics=metrics,
        models=models,
        bulk_models=bulk_models,
        executor=executor,
        queries=QueryRunner(
            models=models,
            analyzer=analyzer,
            executor=executor,
            liveness_default=settings.liveness.check_by_default,
            on_cache=lambda result: metrics.cache_requests.labels(result=result).inc(),
        ),
        events=build_event_bus(settings.events, metrics),  # connects in the lifespan
    )


async def open_storage(state: AppState) -> None:
    """Database (migrated), cache and vector search, wired into the gallery service."""
    settings = state.settings
    state.components["database"] = "migrating"
    engine = state.engine or create_engine(settings.db)  # kept across start-up retries
    state.engine = engine
    await upgrade_database(settings, engine=engine)
    repository = SqlGalleryRepository(engine, sealer=Sealer.from_settings(settings.db))
    state.repository = repository
    state.components["database"] = engine.dialect.name
    state.cache = create_cache(
        settings, on_error=lambda op: state.metrics.cache_errors.labels(backend="redis").inc()
    )
    state.components["cache"] = "redis" if settings.cache.redis_url else "memory"
    person_cache = PersonCache(
        state.cache,
        float(settings.cache.ttl_seconds),
        queries=create_query_cache(settings),
        query_ttl=float(settings.cache.query_ttl_seconds),
        template_bytes=settings.cache.template_max_mb * MiB,
    )
    searcher = await create_searcher(
        repository,
        IndexOptions.from_settings(settings),
        on_persons_changed=person_cache.purge_persons,
    )
    await searcher.sync()
    state.components["index"] = str(getattr(searcher, "backend", "memory"))
    state.queries.cache = person_cache
    state.queries.space_counts = repository.space_counts
    migration_store = SqlMigrationStore(engine, Sealer.from_settings(settings.db))
    state.queries.active_space = active_space_of(migration_store)
    persons = PersonService(repository=repository, searcher=searcher, cache=person_cache)
    guards = Guards(
        embedders=state.queries.embedder,
        repository=repository,
        searcher=searcher,
        persons=persons,
    )
    identification = IdentificationService(
        queries=state.queries, repository=repository, searcher=searcher, persons=persons
    )
    state.services = GalleryServices(
        persons=persons,
        enrollment=EnrollmentService(
            queries=state.queries,
            repository=repository,
            guards=guards,
            purge=person_cache.purge,
            max_images=settings.limits.max_images_per_request,
            keep_chips=settings.gallery.keep_chips,
            adopt_space=migration_store.adopt,
        ),
        identification=identification,
        verification=VerificationService(state.queries),
        tagging=TaggingService(identification),
        searcher=searcher,
    )
    state.photo_service = PhotoService(
        repository=PhotoRepository(engine, Sealer.from_settings(settings.db)),
        tagging=state.services.tagging,
        persons=persons,
        events=state.events,
        store_images=settings.photos.store_images,
    )
    persons.erasure_hooks.append(state.photo_service.on_erased)
    state.auth = state.auth or open_auth(settings, engine)  # API keys, audit log, rate limits
    state.migrations = GalleryMigrations(
        store=migration_store,
        repository=repository,
        models=state.models,
        purge=person_cache.purge,
        on_switch=state.queries.forget_active,
        batch_size=settings.gallery.migration_batch_size,
        lease_seconds=settings.gallery.migration_lease_seconds,
    )


async def migration_watch(state: AppState) -> None:
    """Once ready, resume the migrations whose worker is gone (after a crash or a restart)."""
    migrations = None
    while migrations is None:
        await asyncio.sleep(0.2)
        migrations = state.migrations if state.ready else None
    await migrations.watch(max(1.0, state.settings.gallery.migration_lease_seconds / 3))


async def close_storage(state: AppState) -> None:
    """Save index snapshots, release the change-log connection, close the cache and the pool."""
    if state.migrations is not None:
        await state.migrations.close()  # stops its workers; a restart resumes them
    if state.services is not None:
        try:
            await state.services.searcher.close()
        except Exception:
            logger.exception("could not save the vector index snapshots")
    if state.repository is not None:
        await state.repository.close()
    if state.cache is not None:
        await state.cache.close()
    if state.auth is not None:
        await state.auth.close()
    if state.engine is not None:
        await state.engine.dispose()


async def open_storage_retrying(state: AppState) -> None:
    """:func:`open_storage`, tried again with backoff while the database cannot be reached, so a
    service started during an outage becomes ready by itself when the database returns."""
    pause = STORAGE_RETRY_FIRST_S
    while True:
        try:
            await open_storage(state)
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            state.components["storage"] = "unavailable"
            state.components["database"] = "unavailable"
            state.startup_error = f"storage unavailable, retrying: {type(exc).__name__}: {exc}"
            logger.warning("database unavailable at start-up (%s); retrying in %.1f s", exc, pause)
            await _discard_partial_storage(state)
            await asyncio.sleep(pause)
            pause = min(pause * 2, STORAGE_RETRY_MAX_S)
            continue
        state.components["storage"] = "ok"
        state.startup_error = None
        return


async def _discard_partial_storage(state: AppState) -> None:
    """What a failed :func:`open_storage` had built (the engine stays, with a fresh pool)."""
    for close in (
        state.repository.close if state.repository is not None else None,
        state.cache.close if state.cache is not None else None,
        state.engine.dispose if state.engine is not None else None,
    ):
        if close is not None:
            with contextlib.suppress(Exception):  # closing connections to a database that is gone
                await close()
    state.repository = None
    state.cache = None


async def preload_names(state: AppState) -> list[str]:
    """``models.preload`` as model names. ``auto`` stands for the default detector and embedder
    and, once storage is open, for the embedder each collection answers with (its active
    space's, :meth:`QueryRunner.collection_embedder`): a gallery enrolled with dlib before a
    better pack was installed keeps dlib, and its first recognize must not wait for a load.
    Collections past :data:`PRELOAD_COLLECTIONS_MAX` are not looked at (their model loads on
    first use)."""
    configured = state.settings.models.preload
    names = state.models.preload_names(configured)
    if "auto" not in configured or state.repository is None:
        return names
    found = await state.repository.list_collections()
    if len(found) > PRELOAD_COLLECTIONS_MAX:
        logger.info(
            "preload: the embedders of the first %d of %d collections",
            PRELOAD_COLLECTIONS_MAX,
            len(found),
        )
    for collection in found[:PRELOAD_COLLECTIONS_MAX]:
        with contextlib.suppress(FaceRecError):  # (its first request says why)
            name = await state.queries.collection_embedder(collection.name, None)
            if name is not None:
                names.append(name)
    return list(dict.fromkeys(names))


def preload(state: AppState, names: list[str]) -> None:
    """Load ``names`` (:func:`preload_names`), and bulk enrollment's own sessions of those that
    have a use for them (onnxruntime's: :meth:`AppState.bulk_manager`), so no first call waits
    for a load."""
    state.models.preload(names)
    if state.bulk_models is not None:
        known = [n for n in names if n in state.models.names()]
        state.bulk_models.preload([n for n in known if state.models.peek(n).threaded])


async def initialise(state: AppState) -> None:
    """Slow start-up work; flips ``state.ready`` when done."""
    try:
        await open_storage_retrying(state)
        if state.services is not None:  # every index in memory before /ready says so
            state.components["index_warm"] = "loading"
            await state.services.searcher.warm()
            state.components["index_warm"] = "ok"
        state.components["models"] = "loading"
        await asyncio.to_thread(preload, state, await preload_names(state))
        state.components["models"] = "ok"
        state.ready = True
        logger.info("facerec %s ready", __version__)
    except Exception as exc:
        state.startup_error = f"{type(exc).__name__}: {exc}"
        for name, value in state.components.items():
            if value in ("migrating", "loading"):
                state.components[name] = "failed"
        logger.exception("start-up failed; the API answers 503 until restarted")


async def idle_unloader(state: AppState) -> None:
    ttl = state.settings.models.idle_unload_seconds
    if ttl <= 0:
        return
    period = max(1.0, min(60.0, ttl / 4))
    while True:
        await asyncio.sleep(period)
        for manager in state.model_managers:
            await asyncio.to_thread(manager.unload_idle)
