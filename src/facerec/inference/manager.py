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
- Names: ``auto`` is the installed model of the task with the lowest ``auto_rank`` (catalogue
  data, carried by each model's info) whose licence allows commercial use, unless
  ``allow_non_commercial``; an alias (``arcface``) is the best installed model that carries it;
  an explicit name is used whatever its licence.
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
from facerec.inference.types import ModelTask

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)


class ModelEvents(Protocol):
    def model_event(self, model: str, event: str, seconds: float = 0.0) -> None: ...

    def model_memory(self, model: str, bytes_used: int) -> None: ...


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


class ModelManager:
    def __init__(
        self,
        models: Mapping[str, Model],
        settings: ModelSettings,
        *,
        events: ModelEvents | None = None,
        clock: Callable[[], float] = time.monotonic,
        providers_available: Callable[[], list[str]] = available_providers,
    ) -> None:
        self._slots = {
            name: _Slot(model, threading.Lock(), front=_front(model, settings))
            for name, model in models.items()
        }
        self._settings = settings
        self._default_names = {
            ModelTask.DETECTION: settings.default_detector,
            ModelTask.EMBEDDING: settings.default_embedder,
        }
        self._events: ModelEvents = events or _NoEvents()
        self._clock = clock
        self._lock = threading.Lock()  # guards in_use, last_used and eviction decisions
        have = set(providers_available())
        chosen = tuple(p for p in settings.providers if p in have) or ("CPUExecutionProvider",)
        self.runtime = RuntimeOptions(
            providers=chosen,
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
        )

    @property
    def budget_bytes(self) -> int:
        return self._settings.memory_budget_mb * 1024 * 1024

    @property
    def memory_kind(self) -> str:
        return "vram" if "CUDAExecutionProvider" in self.runtime.providers else "ram"

    def names(self, task: ModelTask | None = None) -> list[str]:
        return [n for n, s in self._slots.items() if task is None or s.model.info.task == task]

    def installed(self, task: ModelTask) -> list[str]:
        return [n for n in self.names(task) if self._slots[n].model.is_installed()]

    def ranked(self, task: ModelTask) -> list[str]:
        """Models of ``task`` by ``auto_rank`` (unranked last, in registration order)."""
        names = self.names(task)

        def key(item: tuple[int, str]) -> tuple[bool, int, int]:
            rank = self._slots[item[1]].model.info.auto_rank
            return rank is None, rank or 0, item[0]

        return [name for _, name in sorted(enumerate(names), key=key)]

    def auto_candidates(self, task: ModelTask) -> list[str]:
        """What ``auto`` may pick, best first: installed, and licensed for commercial use unless
        ``allow_non_commercial``."""
        allow = self._settings.allow_non_commercial
        return [
            n
            for n in self.ranked(task)
            if self._slots[n].model.is_installed()
            and (allow or self._slots[n].model.info.commercial_use)
        ]

    def resolve(self, task: ModelTask, name: str | None) -> str:
        """A concrete model name for ``name`` (``auto``/None = the configured default of the
        task, ``models.default_detector``/``default_embedder``, else the best installed one; an
        alias = the best installed model carrying it)."""
        if name is None or name == "" or name == "auto":
            configured = self._default_names.get(task, "auto")
            if configured != "auto":
                return self.resolve(task, configured)
            candidates = self.auto_candidates(task)
            if candidates:
                return candidates[0]
            installed = self.installed(task)
            if installed:
                raise ModelNotAvailableError(
                    f"no {task.value} model licensed for commercial use is installed: name one "
                    f"explicitly ({', '.join(installed)}) or set "
                    "FACEREC_MODELS__ALLOW_NON_COMMERCIAL=true to let auto choose it",
                    code="model_not_installed",
                    task=task.value,
                    non_commercial=installed,
                )
            raise ModelNotAvailableError(
                f"no {task.value} model is installed", code="model_not_installed", task=task.value
            )
        if name not in self._slots:
            targets = [n for n in self.ranked(task) if name in self._slots[n].model.info.aliases]
            if targets:
                return self._resolve_alias(task, name, targets)
        slot = self._slots.get(name)
        if slot is None or slot.model.info.task != task:
            raise ModelNotAvailableError(
                f"unknown {task.value} model {name!r}",
                code="unknown_model",
                model=name,
                available=self.installed(task),
                known=self.names(task),
            )
        if not slot.model.is_installed():
            raise ModelNotAvailableError(
                f"model {name!r} is not installed: {slot.model.not_installed_reason()}",
                code="model_not_installed",
                model=name,
                available=self.installed(task),
            )
        return name

    def _resolve_alias(self, task: ModelTask, alias: str, targets: list[str]) -> str:
        for target in targets:
            if self._slots[target].model.is_installed():
                return target
        raise ModelNotAvailableError(
            f"no model for {alias!r} is installed: pull or import one of {', '.join(targets)}",
            code="model_not_installed",
            model=alias,
            candidates=targets,
            available=self.installed(task),
        )

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
