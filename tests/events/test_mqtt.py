"""MQTT sink on the real broker: topics, QoS 1 JSON payloads, outages and reconnection."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from bench.server import free_port

from facerec.events.bus import IDENTIFICATION, PRESENCE_LAST_SEEN, Event, EventBus
from facerec.events.mqtt import MqttSink, MqttTarget, topic_for
from facerec.metrics import Metrics
from tests.conftest import unavailable
from tests.events.conftest import Subscriber, broker_reachable


def test_urls() -> None:
    assert MqttTarget.from_url("mqtt://127.0.0.1") == MqttTarget(
        "127.0.0.1", 1883, False, None, None
    )
    assert MqttTarget.from_url("mqtts://bob:s%40cret@broker.lan") == MqttTarget(
        "broker.lan", 8883, True, "bob", "s@cret"
    )
    with pytest.raises(ValueError):
        MqttTarget.from_url("http://broker:1883")


def test_topics_are_one_level_per_part() -> None:
    event = Event(PRESENCE_LAST_SEEN, "acme", "lobby/cams+#", {})
    assert topic_for("site/facerec/", event) == "site/facerec/acme/lobby_cams__/presence.last_seen"


async def test_events_reach_the_broker(
    mqtt_url: str, topic_prefix: str, subscribe: Callable[[str], Subscriber]
) -> None:
    subscriber = subscribe(f"{topic_prefix}/#")
    metrics = Metrics()
    sink = MqttSink(mqtt_url, topic_prefix=topic_prefix)
    bus = EventBus([sink], counters=metrics)
    bus.start()
    assert await sink.wait_connected(10)
    sent = Event(IDENTIFICATION, "acme", "staff", {"person_id": "p1", "similarity": 0.93})
    bus.publish(sent)
    bus.publish(Event(PRESENCE_LAST_SEEN, "acme", "lobby", {"track_id": 4}))
    await bus.drain()
    topic, payload = await asyncio.to_thread(subscriber.next)
    assert topic == f"{topic_prefix}/acme/staff/identification"
    assert payload == sent.as_dict()
    topic, payload = await asyncio.to_thread(subscriber.next)
    assert topic == f"{topic_prefix}/acme/lobby/presence.last_seen"
    assert payload["data"] == {"track_id": 4}
    assert bus.delivered == {"mqtt": 2}  # PUBACKs received
    assert (
        metrics.registry.get_sample_value("facerec_events_delivered_total", {"sink": "mqtt"}) == 2
    )
    await bus.close()
    assert not sink.connected


async def test_broker_down_fails_fast_and_never_blocks() -> None:
    metrics = Metrics()
    sink = MqttSink(f"mqtt://127.0.0.1:{free_port()}", ack_timeout_s=30)
    bus = EventBus([sink], counters=metrics)
    bus.start()
    started = time.perf_counter()
    for n in range(100):
        bus.publish(Event(IDENTIFICATION, "t", "c", {"n": n}))
    assert time.perf_counter() - started < 0.1
    await bus.drain(5)
    assert bus.failed == 100 and bus.delivered == {"mqtt": 0}
    assert metrics.registry.get_sample_value("facerec_events_failed_total", {"sink": "mqtt"}) == 100
    started = time.perf_counter()
    await bus.close()
    assert time.perf_counter() - started < 6


@pytest.fixture
def own_broker() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts a private Mosquitto on a free port (so it can be stopped); yields a restarter."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not shutil.which(binary):
        unavailable("the mosquitto binary", "apt-get install mosquitto")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while not broker_reachable(f"mqtt://127.0.0.1:{port}"):
            assert time.monotonic() < deadline, "private mosquitto did not start"
            time.sleep(0.05)
        return process

    start.port = port  # type: ignore[attr-defined]
    yield start
    for process in processes:
        process.terminate()
        process.wait(5)


async def test_reconnects_by_itself(
    own_broker: Callable[[], subprocess.Popen[bytes]], topic_prefix: str
) -> None:
    url = f"mqtt://127.0.0.1:{own_broker.port}"  # type: ignore[attr-defined]
    broker = own_broker()
    sink = MqttSink(url, topic_prefix=topic_prefix, ack_timeout_s=2)
    bus = EventBus([sink])
    bus.start()
    assert await sink.wait_connected(10)

    broker.terminate()
    broker.wait(5)
    for _ in range(100):
        if not sink.connected:
            break
        await asyncio.sleep(0.05)
    assert not sink.connected
    bus.publish(Event(IDENTIFICATION, "t", "c", {"during": "outage"}))
    await bus.drain()
    assert bus.failed == 1

    await asyncio.to_thread(own_broker)  # the same port again
    subscriber = await asyncio.to_thread(Subscriber, url, f"{topic_prefix}/#")
    try:
        assert await sink.wait_connected(15), "the sink did not reconnect"
        bus.publish(Event(IDENTIFICATION, "t", "c", {"after": "outage"}))
        await bus.drain()
        await asyncio.to_thread(
            subscriber.wait_for, lambda topic, p: p["data"] == {"after": "outage"}
        )
        assert bus.delivered == {"mqtt": 1}
    finally:
        subscriber.close()
        await bus.close()
