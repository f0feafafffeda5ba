"""The event bus: use cases publish, sinks (MQTT, webhooks) deliver, nobody waits.

``publish`` never blocks and never raises, from the event loop or from any thread: the event's
data is checked (:mod:`facerec.events.payload`: no image, no embedding, plain JSON), then queued
for every sink. Each sink has its own bounded queue and worker, so a slow or dead receiver never
holds up another; when a sink's queue is full the event is dropped for that sink and counted.
No event carries an image or an embedding: only ids, names, scores, boxes and times.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from facerec.events.payload import UnsafeEventDataError, clean_data

log = logging.getLogger(__name__)

# Event types.
IDENTIFICATION = "identification"  # a REST recognize / recognize-all decided an identity
PHOTO_TAGGED = "photo.tagged"  # a stored photo was tagged
TRACK_DECIDED = "track.decided"  # a stream track's identity was decided (or changed)
PRESENCE_FIRST_SEEN = "presence.first_seen"  # a person appeared on a stream
PRESENCE_LAST_SEEN = "presence.last_seen"  # a person's track ended on a stream

# Bus-level reasons an event is not delivered (the ``reason`` label of the dropped counter).
DROPPED_QUEUE_FULL = "queue_full"
DROPPED_UNSAFE = "unsafe_data"


@dataclass(frozen=True)
class Event:
    type: str
    tenant: str
    collection: str  # the collection's name as the tenant knows it
    data: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "tenant": self.tenant,
            "collection": self.collection,
            "at": self.at.isoformat(),
            "data": dict(self.data),
        }


class EventSink(Protocol):
    """A destination. Optionally also ``start()`` (called by :meth:`EventBus.start`, on the loop)
    and ``concurrency: int`` (deliveries in flight at once; 1 when absent)."""

    name: str

    async def deliver(self, event: Event) -> None:
        """Deliver one event; may raise (the bus logs and counts it)."""
        ...

    async def close(self) -> None: ...


class EventCounters(Protocol):
    """Where the bus reports what happened (:class:`facerec.metrics.Metrics` implements it)."""

    def event_published(self, event_type: str) -> None: ...

    def event_dropped(self, sink: str, reason: str) -> None: ...

    def event_delivered(self, sink: str) -> None: ...

    def event_failed(self, sink: str) -> None: ...


class _NoCounters:
    def event_published(self, event_type: str) -> None:
        pass

    def event_dropped(self, sink: str, reason: str) -> None:
        pass

    def event_delivered(self, sink: str) -> None:
        pass

    def event_failed(self, sink: str) -> None:
        pass


@dataclass
class _Lane:
    """One sink's queue, worker and deliveries in flight."""

    sink: EventSink
    queue: asyncio.Queue[Event]
    concurrency: int
    worker: asyncio.Task[None] | None = None
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


class EventBus:
    def __init__(
        self,
        sinks: Sequence[EventSink] = (),
        *,
        max_queue: int = 10_000,
        counters: EventCounters | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.published = 0
        self.dropped = 0  # a sink's queue was full (counted once per sink)
        self.rejected = 0  # the data could carry a face (see facerec.events.payload)
        self.failed = 0  # a sink raised
        self.delivered: dict[str, int] = {sink.name: 0 for sink in self.sinks}
        self._counters: EventCounters = counters or _NoCounters()
        self._lanes = [
            _Lane(sink, asyncio.Queue(max_queue), max(1, int(getattr(sink, "concurrency", 1))))
            for sink in self.sinks
        ]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    def publish(self, event: Event) -> None:
        """Queue ``event`` for every sink; never blocks, never raises."""
        if not self.sinks:
            return
        try:
            safe = dataclasses.replace(event, data=clean_data(event.data))
        except UnsafeEventDataError as exc:
            self.rejected += 1
            self._counters.event_dropped("bus", DROPPED_UNSAFE)
            log.error("event %s rejected: %s", event.type, exc)
            return
        except Exception:  # publish never raises into a request
            self.rejected += 1
            self._counters.event_dropped("bus", DROPPED_UNSAFE)
            log.exception("event %s rejected", event.type)
            return
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            # asyncio queues are not thread-safe: hand over to the loop (an executor thread).
            with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
                loop.call_soon_threadsafe(self._enqueue, safe)
            return
        self._enqueue(safe)

    def _enqueue(self, event: Event) -> None:
        self.published += 1
        self._counters.event_published(event.type)
        for lane in self._lanes:
            try:
                lane.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1
                self._counters.event_dropped(lane.sink.name, DROPPED_QUEUE_FULL)

    def start(self) -> None:
        """Start every sink and its worker (on the running loop); idempotent."""
        if not self.sinks or self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for lane in self._lanes:
            start = getattr(lane.sink, "start", None)
            if start is not None:
                try:
                    start()
                except Exception:  # a sink that cannot start fails its deliveries, not the app
                    log.exception("event sink %s could not start", lane.sink.name)
            lane.worker = asyncio.create_task(
                self._run(lane), name=f"facerec-events-{lane.sink.name}"
            )

    async def _run(self, lane: _Lane) -> None:
        slots = asyncio.Semaphore(lane.concurrency)
        while True:
            event = await lane.queue.get()
            await slots.acquire()
            task = asyncio.create_task(self._deliver(lane, event, slots))
            lane.inflight.add(task)
            task.add_done_callback(lane.inflight.discard)

    async def _deliver(self, lane: _Lane, event: Event, slots: asyncio.Semaphore) -> None:
        name = lane.sink.name
        try:
            await lane.sink.deliver(event)
        except Exception as exc:  # a sink's failure never stops the others
            self.failed += 1
            self._counters.event_failed(name)
            log.warning("event sink %s failed on %s: %s", name, event.type, exc)
        else:
            self.delivered[name] = self.delivered.get(name, 0) + 1
            self._counters.event_delivered(name)
        finally:
            slots.release()
            lane.queue.task_done()

    async def drain(self, within_s: float = 5.0) -> None:
        """Wait (at most ``within_s``) until queued events are delivered (tests, shutdown)."""
        if self._loop is None:
            return
        joins = [lane.queue.join() for lane in self._lanes]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*joins), within_s)

    async def close(self, within_s: float = 5.0) -> None:
        """Deliver what is queued (at most ``within_s``), then stop the workers and close sinks."""
        await self.drain(within_s)
        for lane in self._lanes:
            tasks = [*lane.inflight, *([lane.worker] if lane.worker is not None else [])]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            lane.worker = None
        self._loop = None
        self._loop_thread = None
        for sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:
                log.warning("event sink %s did not close cleanly: %s", sink.name, exc)
