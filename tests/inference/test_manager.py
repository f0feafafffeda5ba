"""Model manager: lazy load once under concurrency, memory-budget LRU eviction, idle unload,
provider selection. Fake models (the manager is what is under test); real weights are exercised
by the detection tests."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from facerec.config import ModelSettings
from facerec.errors import ModelNotAvailableError
from facerec.inference.base import Model, RuntimeOptions
from facerec.inference.manager import ModelManager
from facerec.inference.types import ModelInfo, ModelTask
from facerec.inference.unavailable import UnavailableModel

MB = 1024 * 1024


class FakeModel(Model):
    def __init__(self, name: str, size_mb: int, load_seconds: float = 0.0) -> None:
        super().__init__(ModelInfo(name, ModelTask.DETECTION, "fake", "1", "test", "none"))
        self.size = size_mb * MB
        self.load_seconds = load_seconds
        self.loads = 0
        self.runtime: RuntimeOptions | None = None

    def weights_bytes(self) -> int:
        return self.size

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        self.loads += 1
        self.runtime = runtime
        time.sleep(self.load_seconds)
        return object()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manager(models: list[Model], clock: Clock | None = None, **settings: Any) -> ModelManager:
    return ModelManager(
        {m.name: m for m in models},
        ModelSettings(**settings),
        clock=clock or Clock(),
        providers_available=lambda: ["CPUExecutionProvider"],
    )


def test_lazy_load_on_first_use() -> None:
    model = FakeModel("a", 10)
    m = manager([model])
    assert not model.loaded
    with m.use("a", FakeModel) as used:
        assert used is model and model.loaded
    assert model.loads == 1


def test_concurrent_first_use_loads_once() -> None:
    model = FakeModel("a", 10, load_seconds=0.2)
    m = manager([model])
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            with m.use("a", FakeModel):
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert model.loads == 1


def test_budget_evicts_least_recently_used() -> None:
    clock = Clock()
    a, b, c = FakeModel("a", 40), FakeModel("b", 40), FakeModel("c", 40)
    m = manager([a, b, c], clock, memory_budget_mb=100)
    with m.use("a", FakeModel):
        pass
    clock.now += 1
    with m.use("b", FakeModel):
        pass
    clock.now += 1
    with m.use("a", FakeModel):  # a is now more recent than b
        pass
    clock.now += 1
    with m.use("c", FakeModel):
        pass
    assert a.loaded and c.loaded and not b.loaded
    assert m.loaded_bytes() == 80 * MB


def test_model_in_use_is_not_evicted() -> None:
    clock = Clock()
    a, b = FakeModel("a", 60), FakeModel("b", 60)
    m = manager([a, b], clock, memory_budget_mb=100)
    with m.use("a", FakeModel):
        clock.now += 1
        with m.use("b", FakeModel):
            assert a.loaded and b.loaded  # over budget rather than unloading a running model
    clock.now += 1
    c = m.peek("a")
    assert c.loaded


def test_idle_unload_after_ttl() -> None:
    clock = Clock()
    a, b = FakeModel("a", 10), FakeModel("b", 10)
    m = manager([a, b], clock, idle_unload_seconds=60)
    with m.use("a", FakeModel):
        pass
    clock.now += 30
    with m.use("b", FakeModel):
        pass
    clock.now += 40  # a idle 70 s, b idle 40 s
    assert m.unload_idle() == ["a"]
    assert not a.loaded and b.loaded
    clock.now += 30
    assert m.unload_idle() == ["b"]
    with m.use("a", FakeModel):  # reloads on next use
        pass
    assert a.loads == 2


def test_idle_unload_disabled_with_zero() -> None:
    clock = Clock()
    a = FakeModel("a", 10)
    m = manager([a], clock, idle_unload_seconds=0)
    with m.use("a", FakeModel):
        pass
    clock.now += 10_000
    assert m.unload_idle() == []


def test_providers_are_configured_intersect_available() -> None:
    a = FakeModel("a", 1)
    m = manager(
        [a], providers=["CUDAExecutionProvider", "CPUExecutionProvider"], intra_op_threads=3
    )
    assert m.runtime.providers == ("CPUExecutionProvider",)
    assert m.memory_kind == "ram"
    with m.use("a", FakeModel):
        pass
    assert a.runtime is not None and a.runtime.intra_op_threads == 3


def test_cuda_budget_is_vram_when_available() -> None:
    m = ModelManager(
        {},
        ModelSettings(providers=["CUDAExecutionProvider", "CPUExecutionProvider"]),
        providers_available=lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert m.runtime.providers[0] == "CUDAExecutionProvider"
    assert m.memory_kind == "vram"


def test_resolve_auto_unknown_and_not_installed() -> None:
    info = ModelInfo("scrfd", ModelTask.DETECTION, "scrfd", "", "pack:scrfd", "")
    m = manager([FakeModel("hog", 1), UnavailableModel(info, "import the pack")])
    assert m.resolve(ModelTask.DETECTION, "auto") == "hog"
    with pytest.raises(ModelNotAvailableError) as unknown:
        m.resolve(ModelTask.DETECTION, "nope")
    assert unknown.value.code == "unknown_model"
    assert unknown.value.details["available"] == ["hog"]
    with pytest.raises(ModelNotAvailableError) as missing:
        m.resolve(ModelTask.DETECTION, "scrfd")
    assert missing.value.code == "model_not_installed"


def test_auto_is_the_configured_default() -> None:
    m = manager([FakeModel("hog", 1), FakeModel("cnn", 1)], default_detector="cnn")
    assert m.resolve(ModelTask.DETECTION, "auto") == "cnn"
    assert m.resolve(ModelTask.DETECTION, None) == "cnn"
    assert m.resolve(ModelTask.DETECTION, "hog") == "hog"  # a named model still wins
    broken = manager([FakeModel("hog", 1)], default_detector="nope")
    with pytest.raises(ModelNotAvailableError) as unknown:
        broken.resolve(ModelTask.DETECTION, "auto")
    assert unknown.value.code == "unknown_model"


def test_preload_auto_is_what_a_request_naming_no_model_gets() -> None:
    """``auto`` in ``models.preload`` loads the default detector and embedder: the best
    installed (a pack installed later changes it), or the configured defaults; once each."""
    hog, cnn = FakeModel("hog", 1), FakeModel("cnn", 1)
    embedder = FakeModel("resnet", 1)
    embedder.info = ModelInfo("resnet", ModelTask.EMBEDDING, "fake", "1", "test", "none")
    m = manager([hog, cnn, embedder])
    assert m.preload_names(["auto"]) == ["hog", "resnet"]
    assert m.preload_names(["cnn", "auto", "hog"]) == ["cnn", "hog", "resnet"]
    configured = manager([hog, cnn, embedder], default_detector="cnn")
    assert configured.preload_names(["auto"]) == ["cnn", "resnet"]
    detectors_only = manager([hog])
    assert detectors_only.preload_names(["auto"]) == ["hog"]  # no embedder installed
    assert ModelSettings().preload == ["auto"]


def test_status_reports_memory_and_provider() -> None:
    a, b = FakeModel("a", 5), FakeModel("b", 7)
    m = manager([a, b])
    with m.use("b", FakeModel):
        pass
    status = {s.name: s for s in m.status()}
    assert status["b"].loaded and status["b"].memory_bytes == 7 * MB
    assert not status["a"].loaded and status["a"].memory_bytes == 0
