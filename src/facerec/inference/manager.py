"""The one place that loads, caches and unloads models.

- Lazy: a model loads on first use, under its own lock, so concurrent first requests load it once.
- Budget: loaded models' ``weights_bytes`` must fit ``memory_budget_mb`` (VRAM when a CUDA
  provider is active, RAM otherwise); loading one more evicts the least recently used models that
  are not in use at that moment.
- Idle unload: ``unload_idle()`` (run periodically by the app) unloads models unused for
  ``idle_unload_seconds``.
- Providers: the configured list ∩ what onnxruntime has, in the configured order.
- Batching: with ``models.batching``, ``use()`` gives the model's batching front
  (:mod:`facerec.inference.batching_models`): same interface, runs shared by concurrent callers;
  ``peek()`` gives the model itself.
- Names: ``auto``, aliases and explicit names mean what :class:`ModelChoice` says
  (:mod:`facerec.inference.model_choice`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from facerec.config import ModelSettings
from facerec.errors import ModelNotAvailableError
from facerec.inference.base import Model, RuntimeOptions
from facerec.inference.batching import BatchPolicy, BatchStats
from facerec.inference.batching_models import batching_front
from facerec.inference.model_choice import ModelChoice

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)


class ModelEvents(Protocol):
    def model_event(self, model: str, event: str, seconds: float = 0.0) -> None: ...

    def model_memory(self, model: str, bytes_used: int) -> None: ...


class PrefixedEvents:
    """Another manager's events under ``prefix`` + the model's name (bulk enrollment's own
    sessions: ``bulk:retinaface``), so the service's series count only its own loads and memory."""

    def __init__(self, inner: ModelEvents, prefix: str) -> None:
        self.inner = inner
        self.prefix = prefix

    def model_event(self, model: str, event: str, seconds: float = 0.0) -> None:
        self.inner.model_event(self.prefix + model, event, seconds)

    def model_memory(self, model: str, bytes_used: int) -> None:
        self.inner.model_memory(self.prefix + model, bytes_used)


class _NoEvents:
    def model_event(self, model: str, event: str, seconds: float = 0.0) -> None:
        return None

    def model_memory(self, model: str, bytes_used: int) -> None:
        return None


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


@dataclass(frozen=True)
class ModelStatus:
    name: str
    task: str
    family: str
    version: str
    source: str
    license: str
    license_url: str
    commercial_use: bool
    aliases: tuple[str, ...]
    description: str
    installed: bool
    not_installed_reason: str
    loaded: bool
    memory_bytes: int
    provider: str
    last_used_seconds_ago: float | None


@dataclass
class _Slot:
    model: Model
    lock: threading.Lock
    last_used: float = 0.0
    in_use: int = 0
    front: Model | None = None  # batching front given to ``use()`` callers


class ModelManager(ModelChoice):
    def __init__(
        self,
        models: Mapping[str, Model],
        settings: ModelSettings,
        *,
        events: ModelEvents | None = None,
        clock: Callable[[], float] = time.monotonic,
        providers_available: Callable[[], list[str]] = available_providers,
    ) -> None:
        super().__init__(models, settings)
        self._slots = {
            name: _Slot(model, threading.Lock(), front=_front(model, settings))
            for name, model in models.items()
        }
        self._settings = settings
        self._events: ModelEvents = events or _NoEvents()
        self._clock = clock
        self._lock = threading.Lock()  # guards in_use, last_used and eviction decisions
        have = set(providers_available())
        chosen = tuple(p for p in settings.providers if p in have) or ("CPUExecutionProvider",)
        self.runtime = RuntimeOptions(
            providers=chosen,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            dlib_processes=settings.dlib_processes,
        )

    @property
    def budget_bytes(self) -> int:
        return self._settings.memory_budget_mb * 1024 * 1024

    @property
    def memory_kind(self) -> str:
        return "vram" if "CUDAExecutionProvider" in self.runtime.providers else "ram"

    def peek(self, name: str) -> Model:
        """The model object without loading it (for metadata such as thresholds)."""
        return self._slots[name].model

    @contextmanager
    def use(self, name: str, kind: type[M]) -> Iterator[M]:
        """The loaded model, held so that eviction cannot unload it while the caller runs it."""
        slot = self._slots[name]
        with self._lock:
            slot.in_use += 1
            slot.last_used = self._clock()
        try:
            self._ensure_loaded(name, slot)
            model = slot.front or slot.model
            if not isinstance(model, kind):
                raise ModelNotAvailableError(
                    f"model {name!r} is not a {kind.__name__}", code="wrong_model_task", model=name
                )
            yield model
        finally:
            with self._lock:
                slot.in_use -= 1
                slot.last_used = self._clock()

    def _ensure_loaded(self, name: str, slot: _Slot) -> None:
        if slot.model.loaded:
            return
        with slot.lock:
            if slot.model.loaded:
                return
            self._make_room(name, slot.model.weights_bytes())
            started = time.perf_counter()
            slot.model.load(self.runtime)
            elapsed = time.perf_counter() - started
        logger.info("loaded model %s in %.2fs on %s", name, elapsed, slot.model.provider)
        self._events.model_event(name, "load", elapsed)
        self._events.model_memory(name, slot.model.weights_bytes())

    def _make_room(self, name: str, needed: int) -> None:
        with self._lock:
            loaded = [
                (s.last_used, n, s) for n, s in self._slots.items() if n != name and s.model.loaded
            ]
            used = sum(s.model.weights_bytes() for _, _, s in loaded)
            victims: list[tuple[str, _Slot]] = []
            for _, victim_name, victim in sorted(loaded, key=lambda item: item[0]):
                if used + needed <= self.budget_bytes:
                    break
                if victim.in_use:
                    continue
                victims.append((victim_name, victim))
                used -= victim.model.weights_bytes()
        for victim_name, victim in victims:
            self._unload_slot(victim_name, victim, "evict")
        if used + needed > self.budget_bytes:
            logger.warning(
                "model %s (%d bytes) exceeds the free %s budget (%d of %d bytes used)",
                name,
                needed,
                self.memory_kind,
                used,
                self.budget_bytes,
            )

    def _unload_slot(self, name: str, slot: _Slot, event: str) -> bool:
        with slot.lock, self._lock:
            if slot.in_use or not slot.model.loaded:
                return False
            slot.model.unload()
        logger.info("unloaded model %s (%s)", name, event)
        self._events.model_event(name, event)
        self._events.model_memory(name, 0)
        return True

    def unload(self, name: str) -> bool:
        return self._unload_slot(name, self._slots[name], "unload")

    def unload_idle(self) -> list[str]:
        ttl = self._settings.idle_unload_seconds
        if ttl <= 0:
            return []
        now = self._clock()
        idle = [
            (n, s)
            for n, s in self._slots.items()
            if s.model.loaded and not s.in_use and now - s.last_used >= ttl
        ]
        return [n for n, s in idle if self._unload_slot(n, s, "idle_unload")]

    def preload(self, names: list[str]) -> None:
        for name in names:
            if name in self._slots and self._slots[name].model.is_installed():
                self._ensure_loaded(name, self._slots[name])
                self._slots[name].last_used = self._clock()
            else:
                logger.warning("preload: model %s is unknown or not installed", name)

    def loaded_bytes(self) -> int:
        return sum(s.model.weights_bytes() for s in self._slots.values() if s.model.loaded)

    def status(self) -> list[ModelStatus]:
        now = self._clock()
        result = []
        for name, slot in self._slots.items():
            info = slot.model.info
            loaded = slot.model.loaded
            result.append(
                ModelStatus(
                    name=name,
                    task=info.task.value,
                    family=info.family,
                    version=slot.model.version,
                    source=info.source,
                    license=info.license,
                    license_url=info.license_url,
                    commercial_use=info.commercial_use,
                    aliases=info.aliases,
                    description=info.description,
                    installed=slot.model.is_installed(),
                    not_installed_reason=slot.model.not_installed_reason(),
                    loaded=loaded,
                    memory_bytes=slot.model.weights_bytes() if loaded else 0,
                    provider=slot.model.provider if loaded else "",
                    last_used_seconds_ago=(now - slot.last_used) if slot.last_used else None,
                )
            )
        return result

    def unload_all(self) -> None:
        for name, slot in self._slots.items():
            self._unload_slot(name, slot, "shutdown")

    def batch_stats(self) -> dict[str, BatchStats]:
        """Runs, inputs and callers so far of each model that batches."""
        return {
            name: batcher.stats
            for name, slot in self._slots.items()
            if (batcher := getattr(slot.front, "batcher", None)) is not None
        }

    def close(self) -> None:
        """Shutdown: batches being gathered run now, later model calls are refused (503)."""
        for slot in self._slots.values():
            batcher = getattr(slot.front, "batcher", None)
            if batcher is not None:
                batcher.close()


def _front(model: Model, settings: ModelSettings) -> Model | None:
    if not settings.batching:
        return None
    policy = BatchPolicy(
        max_batch=settings.batch_max_size,
        max_wait_s=settings.batch_max_wait_ms / 1000.0,
        max_concurrent=settings.batch_concurrency,
    )
    return batching_front(model, policy, detection=settings.batch_detection)
