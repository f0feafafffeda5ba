"""The bus: never blocks nor raises, one queue per sink, failures isolated and counted."""

from __future__ import annotations

import asyncio
import threading
import time

from facerec.events.bus import IDENTIFICATION, PRESENCE_FIRST_SEEN, Event, EventBus
from facerec.metrics import Metrics


class Recorder:
    def __init__(self, name: str = "recorder", *, delay: float = 0.0, fail: bool = False) -> None:
        self.name = name
        self.delay = delay
        self.fail = fail
        self.events: list[Event] = []
        self.closed = False

    async def deliver(self, event: Event) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("receiver down")
        self.events.append(event)

    async def close(self) -> None:
        self.closed = True


def event(n: int = 0, kind: str = IDENTIFICATION) -> Event:
    return Event(kind, "acme", "staff", {"person_id": f"p{n}", "similarity": 0.9})


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_no_sinks_is_a_no_op() -> None:
    bus = EventBus()
    assert not bus.enabled
    bus.start()
    bus.publish(event())
    assert bus.published == 0
    await bus.close()


async def test_every_sink_gets_every_event_in_order() -> None:
    first, second = Recorder("first"), Recorder("second")
    bus = EventBus([first, second])
    bus.start()
    for n in range(50):
        bus.publish(event(n))
    await bus.drain()
    assert [e.data["person_id"] for e in first.events] == [f"p{n}" for n in range(50)]
    assert second.events == first.events
    assert bus.delivered == {"first": 50, "second": 50}
    await bus.close()
    assert first.closed and second.closed


async def test_a_failing_or_slow_sink_never_holds_up_another() -> None:
    metrics = Metrics()
    slow, broken, healthy = Recorder("slow", delay=5), Recorder("broken", fail=True), Recorder()
    bus = EventBus([slow, broken, healthy], counters=metrics)
    bus.start()
    started = time.perf_counter()
    for n in range(10):
        bus.publish(event(n))
    assert time.perf_counter() - started < 0.05  # publish never waits
    for _ in range(100):
        if len(healthy.events) == 10 and bus.failed == 10:
            break
        await asyncio.sleep(0.01)
    assert len(healthy.events) == 10 and bus.failed == 10 and slow.events == []
    assert sample(metrics, "facerec_events_failed_total", sink="broken") == 10
    assert sample(metrics, "facerec_events_delivered_total", sink="recorder") == 10
    assert sample(metrics, "facerec_events_published_total", type=IDENTIFICATION) == 10
    await bus.close(within_s=0.1)  # the slow sink's deliveries are cancelled, not awaited


async def test_a_full_queue_drops_and_counts() -> None:
    metrics = Metrics()
    stuck = Recorder("stuck", delay=60)
    bus = EventBus([stuck], max_queue=5, counters=metrics)
    bus.start()
    for n in range(20):
        bus.publish(event(n))
    # One is being delivered only once the worker runs; five wait; the rest are dropped.
    assert bus.published == 20 and bus.dropped == 15
    assert sample(metrics, "facerec_events_dropped_total", sink="stuck", reason="queue_full") == 15
    await bus.close(within_s=0.05)


async def test_publish_from_executor_threads() -> None:
    sink = Recorder()
    bus = EventBus([sink])
    bus.start()

    def worker(offset: int) -> None:
        for n in range(100):
            bus.publish(event(offset + n, PRESENCE_FIRST_SEEN))

    threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
    await asyncio.gather(*(asyncio.to_thread(t.run) for t in threads))
    await asyncio.sleep(0.05)  # the hand-overs reach the loop
    await bus.drain()
    assert len(sink.events) == 400 and bus.published == 400
    await bus.close()


async def test_events_published_before_start_are_delivered_once_started() -> None:
    sink = Recorder()
    bus = EventBus([sink])
    bus.publish(event())
    bus.start()
    await bus.drain()
    assert len(sink.events) == 1
    await bus.close()


def test_payload_is_the_event_as_dict() -> None:
    payload = event(7).as_dict()
    assert set(payload) == {"type", "tenant", "collection", "at", "data"}
    assert payload["data"] == {"person_id": "p7", "similarity": 0.9}
