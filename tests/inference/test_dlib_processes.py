"""dlib's ResNet in helper processes (``models.dlib_processes``): the same vectors as in this
process, bit for bit; a helper killed mid-life is replaced and the call still answered; calls
run on several helpers at once; unloading the model ends the helpers; the setting reaches the
model through the manager."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from facerec.config import Settings
from facerec.errors import ModelLoadError
from facerec.inference.base import RuntimeOptions
from facerec.inference.embedders.dlib_processes import ProcessEncoder
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder, model_paths
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
from tests.images import composite_rgb, grace_hopper_rgb
from tests.inference.test_embedders_real import bgr, check_same_and_different, faces_in


def _chips(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (150, 150, 3), np.uint8) for _ in range(count)]


def _ended(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def in_process() -> DlibResNetEmbedder:
    embedder = DlibResNetEmbedder()
    embedder.load(RuntimeOptions())
    return embedder


@pytest.fixture(scope="module")
def in_helpers() -> Iterator[DlibResNetEmbedder]:
    embedder = DlibResNetEmbedder()
    embedder.load(RuntimeOptions(dlib_processes=2))
    yield embedder
    embedder.unload()


def test_helpers_give_this_process_s_vectors(
    in_process: DlibResNetEmbedder, in_helpers: DlibResNetEmbedder
) -> None:
    image = bgr(composite_rgb())
    faces = faces_in(image)
    np.testing.assert_array_equal(in_helpers.embed(image, faces), in_process.embed(image, faces))
    chips = _chips(3)
    np.testing.assert_array_equal(in_helpers.embed_chips(chips), in_process.embed_chips(chips))
    check_same_and_different(in_helpers)


def test_calls_run_on_several_helpers_at_once(in_helpers: DlibResNetEmbedder) -> None:
    """Two threads, each a batch: both answered, each with its own rows."""
    image = bgr(grace_hopper_rgb())
    face = faces_in(image)[:1]
    expected = in_helpers.embed(image, face)
    results: list[np.ndarray] = []

    def call() -> None:
        results.append(in_helpers.embed(image, face))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_a_killed_helper_is_replaced_and_the_call_answered() -> None:
    encoder = ProcessEncoder(model_paths()[0], 1)
    try:
        chips = _chips(2, seed=1)
        before = encoder.compute_face_descriptor(chips)
        (pid,) = encoder.pids
        os.kill(pid, signal.SIGKILL)
        assert _ended([pid])
        after = encoder.compute_face_descriptor(chips)
        np.testing.assert_array_equal(after, before)
        (replacement,) = encoder.pids
        assert replacement != pid
    finally:
        encoder.close()
    assert _ended([replacement])


def test_a_helper_that_cannot_load_is_a_model_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "not-a-model.dat"
    broken.write_bytes(b"not dlib's network")
    with pytest.raises(ModelLoadError):
        ProcessEncoder(str(broken), 1)


def test_unloading_ends_the_helpers() -> None:
    embedder = DlibResNetEmbedder()
    embedder.load(RuntimeOptions(dlib_processes=2))
    encoder = embedder.session.encoder
    assert isinstance(encoder, ProcessEncoder)
    pids = encoder.pids
    assert len(pids) == 2
    embedder.unload()
    assert _ended(pids)


def test_the_setting_reaches_the_model(tmp_path: Path) -> None:
    default = Settings(models={"model_dir": tmp_path})
    assert ModelManager(build_models(default), default.models).runtime.dlib_processes == 0
    settings = Settings(models={"model_dir": tmp_path, "dlib_processes": 1})
    manager = ModelManager(build_models(settings), settings.models)
    assert manager.runtime.dlib_processes == 1
    assert manager.peek("dlib_resnet").concurrent_runs(manager.runtime) == 1
    manager.preload(["dlib_resnet"])
    encoder = manager.peek("dlib_resnet").session.encoder
    assert isinstance(encoder, ProcessEncoder)
    pids = encoder.pids
    manager.unload_all()
    assert _ended(pids)
