"""The dynamic batcher's logic with fake runs: who shares a run, in which order results come back,
errors reaching only their caller, the wait for company, follower time-outs and shutdown. No test
asserts a time: threads are lined up with events, never with sleeps that must be long enough."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.config import ModelSettings
from facerec.errors import OverloadedError, ServiceUnavailableError
from facerec.inference.base import FaceEmbedder, RuntimeOptions
from facerec.inference.batching import BatchPolicy, MicroBatcher
from facerec.inference.batching_models import BatchedEmbedder
from facerec.inference.manager import ModelManager
from facerec.inference.types import ImageBGR, ModelInfo, ModelTask
from facerec.values import BBox, Detection


class GatedRun:
    """A run function that records its batches; the first run blocks until ``release``."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, inputs: Sequence[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(inputs))
            first = len(self.batches) == 1
        if first:
            self.started.set()
            self.gate.wait(10)
        if self.fail_on is not None and self.fail_on in inputs:
            raise ValueError(f"bad input {self.fail_on}")
        return [x * 10 for x in inputs]


class Caller(threading.Thread):
    def __init__(self, batcher: MicroBatcher[int, int], inputs: list[int], key: Hashable = None):
        super().__init__(daemon=True)
        self.batcher, self.inputs, self.key = batcher, inputs, key
        self.result: list[int] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.batcher.submit(self.inputs, key=self.key)
        except BaseException as exc:
            self.error = exc


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def reached(batcher: MicroBatcher[int, int], target: int) -> bool:
    return batcher.gathered_inputs >= target


def start(
    batcher: MicroBatcher[int, int], *inputs: list[int], key: Hashable = None
) -> list[Caller]:
    """Callers started one after another, each gathered before the next starts."""
    callers = []
    for item in inputs:
        target = batcher.gathered_inputs + len(item)
        caller = Caller(batcher, item, key)
        caller.start()
        wait_until(partial(reached, batcher, target))
        callers.append(caller)
    return callers


def busy_batcher(run: GatedRun, **policy: Any) -> tuple[MicroBatcher[int, int], Caller]:
    """A batcher with one run slot, taken by a first caller blocked inside the model."""
    batcher = MicroBatcher(run, BatchPolicy(max_wait_s=0.0, max_concurrent=1, **policy))
    first = Caller(batcher, [0])
    first.start()
    assert run.started.wait(10)
    return batcher, first


def join(*callers: Caller) -> None:
    for caller in callers:
        caller.join(10)
        assert not caller.is_alive()


def test_callers_waiting_for_a_busy_model_share_one_run_in_arrival_order() -> None:
    run = GatedRun()
    batcher, first = busy_batcher(run)
    callers = start(batcher, [1, 2], [3], [4, 5, 6])
    run.gate.set()
    join(first, *callers)
    assert run.batches == [[0], [1, 2, 3, 4, 5, 6]]
    assert first.result == [0]
    assert [c.result for c in callers] == [[10, 20], [30], [40, 50, 60]]
    assert batcher.stats.runs == 2 and batcher.stats.callers == 4 and batcher.stats.largest == 6


def test_a_run_holds_at_most_max_batch_inputs() -> None:
    run = GatedRun()
    batcher, first = busy_batcher(run, max_batch=3)
    callers = start(batcher, [1, 2], [3], [4, 5], [6])
    run.gate.set()
    join(first, *callers)
    assert sorted(run.batches[1:]) == [[1, 2, 3], [4, 5, 6]]
    assert [c.result for c in callers] == [[10, 20], [30], [40, 50], [60]]


def test_a_caller_with_more_than_max_batch_inputs_runs_alone_unsplit() -> None:
    batcher = MicroBatcher(GatedRun(), BatchPolicy(max_batch=2, max_wait_s=0.0))
    batcher._run = lambda xs: [x + 1 for x in xs]  # no gate
    assert batcher.submit([1, 2, 3, 4]) == [2, 3, 4, 5]


def test_only_inputs_of_one_key_share_a_run() -> None:
    run = GatedRun()
    batcher, first = busy_batcher(run)
    small = start(batcher, [1], [2], key=(320, 320))
    large = start(batcher, [3], key=(640, 480))
    run.gate.set()
    join(first, *small, *large)
    assert sorted(run.batches[1:]) == [[1, 2], [3]]
    assert [c.result for c in small + large] == [[10], [20], [30]]


def test_an_error_reaches_only_the_caller_whose_input_caused_it() -> None:
    run = GatedRun(fail_on=4)
    batcher, first = busy_batcher(run)
    callers = start(batcher, [1, 2], [3, 4], [5])
    run.gate.set()
    join(first, *callers)
    good, bad, last = callers
    assert good.result == [10, 20] and last.result == [50]
    assert isinstance(bad.error, ValueError) and "bad input 4" in str(bad.error)
    assert run.batches[1] == [1, 2, 3, 4, 5]  # the shared run failed, then one run per caller
    assert sorted(run.batches[2:]) == [[1, 2], [3, 4], [5]]


def test_a_lone_caller_gets_its_own_error() -> None:
    batcher = MicroBatcher(GatedRun(fail_on=7), BatchPolicy(max_wait_s=0.0))
    batcher._run = lambda xs: [x // 0 for x in xs]
    with pytest.raises(ZeroDivisionError):
        batcher.submit([7])


def test_a_run_returning_the_wrong_number_of_rows_is_an_error() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda xs: [1], BatchPolicy(max_wait_s=0.0))
    with pytest.raises(RuntimeError, match="1 results for 2 inputs"):
        batcher.submit([1, 2])


def test_a_lone_leader_runs_after_max_wait_without_company() -> None:
    run = GatedRun()
    run.gate.set()
    batcher = MicroBatcher(run, BatchPolicy(max_wait_s=0.01, max_concurrent=1))
    assert batcher.submit([4]) == [40]
    assert run.batches == [[4]]


def test_callers_arriving_within_max_wait_share_a_run_that_starts_when_full() -> None:
    run = GatedRun()
    run.gate.set()
    # A wait far longer than any test: the run can only have started because the group filled.
    batcher = MicroBatcher(run, BatchPolicy(max_batch=3, max_wait_s=3600.0))
    callers = start(batcher, [1], [2], [3])
    join(*callers)
    assert run.batches == [[1, 2, 3]]
    assert [c.result for c in callers] == [[10], [20], [30]]


def test_a_follower_that_waits_past_timeout_is_told_the_service_is_overloaded() -> None:
    run = GatedRun()
    batcher, first = busy_batcher(run, timeout_s=0.05)
    leader, follower = start(batcher, [1], [2])
    follower.join(10)
    assert isinstance(follower.error, OverloadedError)
    run.gate.set()
    join(first, leader)
    assert leader.result == [10]


def test_close_runs_gathering_batches_at_once_and_refuses_later_calls() -> None:
    run = GatedRun()
    run.gate.set()
    batcher = MicroBatcher(run, BatchPolicy(max_batch=100, max_wait_s=3600.0))
    callers = start(batcher, [1], [2])
    batcher.close()
    join(*callers)
    assert run.batches == [[1, 2]]
    assert [c.result for c in callers] == [[10], [20]]
    with pytest.raises(ServiceUnavailableError):
        batcher.submit([3])


def test_empty_input_needs_no_run() -> None:
    run = GatedRun()
    assert MicroBatcher(run).submit([]) == []
    assert run.batches == []


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        BatchPolicy(max_batch=0)
    with pytest.raises(ValueError):
        BatchPolicy(max_wait_s=-1)


# A fake embedder: the "network" sums each chip's pixels, so rows are easy to check.
class FakeSession:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def run(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        self.calls.append(len(chips))
        return np.asarray([[float(c.sum()), float(len(chips))] for c in chips], np.float32)


class FakeEmbedder(FaceEmbedder):
    dim = 2
    metric = "l2"
    distance_threshold = 0.5
    similarity_scale = 0.1

    def __init__(self, session: FakeSession | None = None) -> None:
        info = ModelInfo("fake_embedder", ModelTask.EMBEDDING, "fake", "1", "test", "MIT")
        super().__init__(info, session=session or FakeSession())

    def weights_bytes(self) -> int:
        return 1

    def _create_session(self, runtime: RuntimeOptions) -> Any:
        return FakeSession()

    def chips(self, image: ImageBGR, faces: Sequence[Detection]) -> list[NDArray[np.uint8]]:
        return [
            image[int(f.bbox.y1) : int(f.bbox.y2), int(f.bbox.x1) : int(f.bbox.x2)] for f in faces
        ]

    def embed_chips(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        out: NDArray[np.float32] = self.session.run(chips)
        return out

    def embed(self, image: ImageBGR, faces: Sequence[Detection]) -> NDArray[np.float32]:
        if not faces:
            return np.zeros((0, 2), np.float32)
        return self.embed_chips(self.chips(image, faces))


def face(x: int) -> Detection:
    return Detection(BBox(x, 0, x + 2, 2), 0.9, None)


def test_the_embedder_front_has_the_models_interface_and_metadata() -> None:
    inner = FakeEmbedder()
    front = BatchedEmbedder(inner, BatchPolicy(max_wait_s=0.0))
    assert isinstance(front, FaceEmbedder)
    assert (front.name, front.dim, front.metric, front.space) == (
        "fake_embedder",
        2,
        "l2",
        inner.space,
    )
    assert front.distance_threshold == 0.5 and front.similarity(0.5) == inner.similarity(0.5)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    np.testing.assert_array_equal(
        front.embed(image, [face(0), face(2)]), inner.embed(image, [face(0), face(2)])
    )
    assert front.embed(image, []).shape == (0, 2)
    front.calibration = None  # set through to the model
    assert front.loaded and front.provider == "CPUExecutionProvider"


def test_concurrent_embeds_share_one_model_run() -> None:
    session = FakeSession()
    inner = FakeEmbedder(session)
    front = BatchedEmbedder(inner, BatchPolicy(max_batch=3, max_wait_s=3600.0))
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    results: dict[int, NDArray[np.float32]] = {}

    def call(x: int) -> None:
        results[x] = front.embed(image, [face(x)])

    threads = [threading.Thread(target=call, args=(x,)) for x in (0, 1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert session.calls == [3]  # one run for the three callers (it filled the batch)
    for x in (0, 1, 2):
        single = inner.embed_chips(inner.chips(image, [face(x)]))
        assert results[x][0, 0] == single[0, 0]  # its own chip's row


def test_the_manager_gives_fronts_to_use_and_models_to_peek() -> None:
    inner = FakeEmbedder()
    manager = ModelManager({"fake": inner}, ModelSettings(), providers_available=lambda: [])
    assert manager.peek("fake") is inner
    with manager.use("fake", FaceEmbedder) as model:
        assert isinstance(model, BatchedEmbedder) and model.inner is inner
    assert set(manager.batch_stats()) == {"fake"}
    manager.close()
    with manager.use("fake", FaceEmbedder) as model, pytest.raises(ServiceUnavailableError):
        model.embed(np.zeros((4, 4, 3), np.uint8), [face(0)])
    plain = ModelManager(
        {"fake": inner}, ModelSettings(batching=False), providers_available=lambda: []
    )
    with plain.use("fake", FaceEmbedder) as model:
        assert model is inner
