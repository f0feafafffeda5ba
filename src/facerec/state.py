"""AppState: everything a request needs, built once in the app's lifespan and closed there."""

from __future__ import annotations

from dataclasses import dataclass, field

from facerec.config import Settings
from facerec.domain.detection import DetectionService
from facerec.executor import InferenceExecutor
from facerec.inference.manager import ModelManager
from facerec.metrics import Metrics


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    models: ModelManager
    executor: InferenceExecutor
    detection: DetectionService
    ready: bool = False
    startup_error: str | None = None
    components: dict[str, str] = field(default_factory=dict)
