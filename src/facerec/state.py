"""AppState: everything a request needs, built once in the app's lifespan and closed there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from facerec.config import Settings
from facerec.domain.queries import QueryRunner
from facerec.errors import FaceRecError
from facerec.events.bus import EventBus
from facerec.executor import InferenceExecutor
from facerec.inference.manager import ModelManager
from facerec.inference.types import ModelTask
from facerec.metrics import Metrics

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from facerec.auth.access import AuthServices
    from facerec.auth.audit import AuditLog
    from facerec.cache.base import Cache
    from facerec.domain.enrollment import EnrollmentService
    from facerec.domain.identification import IdentificationService
    from facerec.domain.migration import GalleryMigrations
    from facerec.domain.persons import PersonService
    from facerec.domain.photos import PhotoService
    from facerec.domain.tagging import TaggingService
    from facerec.domain.verification import VerificationService
    from facerec.storage.protocols import FaceSearcher
    from facerec.storage.sql_repository import SqlGalleryRepository


@dataclass(frozen=True)
class GalleryServices:
    """The use cases that need storage, built once storage is open."""

    persons: PersonService
    enrollment: EnrollmentService
    identification: IdentificationService
    verification: VerificationService
    tagging: TaggingService
    searcher: FaceSearcher


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    models: ModelManager
    executor: InferenceExecutor
    queries: QueryRunner
    # Sessions of their own for bulk enrollment (``models.bulk_intra_op_threads``); None: it
    # runs on ``models``.
    bulk_models: ModelManager | None = None
    # Identifications, stream presence and tagged photos for MQTT/webhooks (no sinks: a no-op).
    events: EventBus = field(default_factory=EventBus)
    ready: bool = False
    startup_error: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    # Storage, built during initialisation (routes only run once ``ready`` is True).
    engine: AsyncEngine | None = None
    cache: Cache | None = None
    repository: SqlGalleryRepository | None = None
    services: GalleryServices | None = None
    # API keys, audit log and rate limits (facerec.auth), built with storage.
    auth: AuthServices | None = None
    # Stored, tagged photos and suggested new persons (facerec.domain.photos).
    photo_service: PhotoService | None = None
    # Migrations of collections to another embedding model (facerec.domain.migration).
    migrations: GalleryMigrations | None = None

    def bulk_manager(self, embedder: str | None) -> ModelManager:
        """The models a bulk enrollment with ``embedder`` runs: sessions of its own for an
        onnxruntime embedder; the service's for one the thread settings mean nothing to (dlib),
        so its weights are never held twice (an unknown name: the service's, which refuses it)."""
        if self.bulk_models is None:
            return self.models
        try:
            name = self.models.resolve(ModelTask.EMBEDDING, embedder)
        except FaceRecError:
            return self.models
        return self.bulk_models if self.models.peek(name).threaded else self.models

    @property
    def model_managers(self) -> list[ModelManager]:
        """Every manager of loaded models (closed, unloaded and trimmed together)."""
        return [self.models] + ([self.bulk_models] if self.bulk_models is not None else [])

    def _services(self) -> GalleryServices:
        if self.services is None:  # pragma: no cover - routes require readiness
            raise RuntimeError("gallery services not initialised")
        return self.services

    @property
    def audit(self) -> AuditLog:
        """``await state.audit.record(principal, "person.erase", person_id, ...)``."""
        if self.auth is None:  # pragma: no cover - routes require readiness
            raise RuntimeError("auth services not initialised")
        return self.auth.audit

    @property
    def persons(self) -> PersonService:
        return self._services().persons

    @property
    def enrollment(self) -> EnrollmentService:
        return self._services().enrollment

    @property
    def identification(self) -> IdentificationService:
        return self._services().identification

    @property
    def verification(self) -> VerificationService:
        return self._services().verification

    @property
    def tagging(self) -> TaggingService:
        return self._services().tagging

    @property
    def photos(self) -> PhotoService:
        if self.photo_service is None:  # pragma: no cover - routes require readiness
            raise RuntimeError("photo service not initialised")
        return self.photo_service
