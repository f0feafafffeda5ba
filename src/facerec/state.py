"""AppState: everything a request needs, built once in the app's lifespan and closed there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from facerec.config import Settings
from facerec.domain.detection import DetectionService
from facerec.domain.faces import FacePipeline
from facerec.executor import InferenceExecutor
from facerec.inference.manager import ModelManager
from facerec.metrics import Metrics

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from facerec.cache.base import Cache
    from facerec.domain.gallery import GalleryService
    from facerec.storage.sql_repository import SqlGalleryRepository


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    models: ModelManager
    executor: InferenceExecutor
    detection: DetectionService
    pipeline: FacePipeline
    ready: bool = False
    startup_error: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    # Storage, built during initialisation (routes only run once ``ready`` is True).
    engine: AsyncEngine | None = None
    cache: Cache | None = None
    repository: SqlGalleryRepository | None = None
    _gallery: GalleryService | None = None

    @property
    def gallery(self) -> GalleryService:
        if self._gallery is None:  # pragma: no cover - routes require readiness
            raise RuntimeError("gallery not initialised")
        return self._gallery
