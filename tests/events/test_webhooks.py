"""Signed webhooks against a local receiver: signature, retries on 5xx, dead letters."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from bench.server import free_port

from facerec.config import EventSettings
from facerec.events.bus import IDENTIFICATION, TRACK_DECIDED, Event, EventBus
from facerec.events.factory import build_event_bus, dead_letters
from facerec.events.webhooks import WebhookSink, sign, sink_name, verify
from facerec.metrics import Metrics
from tests.events.conftest import Receiver

SECRET = b"s3cret-shared-with-the-receiver"


def settings(*urls: str, **overrides: object) -> EventSettings:
    values: dict[str, object] = {
        "webhook_urls": list(urls),
        "webhook_secret": SECRET.decode(),
        "webhook_backoff_s": 0.05,
        "webhook_max_attempts": 3,
        **overrides,
    }
    return EventSettings.model_validate(values)


async def wait_until(done: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2.
    body = b"what do ya want for nothing?"
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert sign(b"Jefe", body) == f"sha256={expected}"
    assert verify(b"Jefe", body, f"sha256={expected}")
    assert not verify(b"other", body, f"sha256={expected}")


def test_sink_names_hide_credentials_and_queries() -> None:
    assert sink_name("https://u:p@hooks.example:8443/in?token=x") == "webhook:hooks.example:8443/in"


def test_settings_refuse_unsigned_webhooks() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        EventSettings(webhook_urls=["https://hooks.example/in"])
    with pytest.raises(ValueError, match="http"):
        EventSettings(webhook_urls=["ftp://x"], webhook_secret="k")


async def test_delivers_signed_events(receiver: Receiver) -> None:
    metrics = Metrics()
    bus = build_event_bus(settings(receiver.url), metrics)
    bus.start()
    sent = Event(IDENTIFICATION, "acme", "staff", {"person_id": "p1", "similarity": 0.91})
    bus.publish(sent)
    await bus.drain()
    await bus.close()
    [request] = receiver.received
    assert json.loads(request.body) == sent.as_dict()
    headers = {key.lower(): value for key, value in request.headers.items()}
    assert verify(SECRET, request.body, headers["x-facerec-signature"])
    assert headers["x-facerec-signature"].startswith("sha256=")
    assert headers["x-facerec-event"] == IDENTIFICATION
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["x-facerec-timestamp"]) - time.time()) < 60
    assert headers["x-facerec-delivery"]
    name = sink_name(receiver.url)
    assert metrics.registry.get_sample_value("facerec_events_delivered_total", {"sink": name}) == 1


async def test_retries_on_500_with_backoff(receiver: Receiver) -> None:
    receiver.script = [500, 503]
    sink = WebhookSink(receiver.url, SECRET, max_attempts=4, backoff_s=0.1)
    bus = EventBus([sink])
    bus.start()
    bus.publish(Event(TRACK_DECIDED, "acme", "lobby", {"track_id": 1}))
    await wait_until(lambda: bus.delivered.get(sink.name) == 1)
    await bus.close()
    assert len(receiver.received) == 3 and sink.attempts == 3 and not sink.dead_letters
    # One delivery id across the retries; pauses grow (0.1 s, then 0.2 s, ±10%).
    assert len({r.headers["X-Facerec-Delivery"] for r in receiver.received}) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert 0.08 < gaps[0] < gaps[1] and gaps[1] > 0.17


async def test_dead_letter_after_the_last_attempt(receiver: Receiver) -> None:
    receiver.default = 500
    metrics = Metrics()
    bus = build_event_bus(settings(receiver.url), metrics)
    bus.start()
    bus.publish(Event(IDENTIFICATION, "acme", "staff", {"person_id": "p9"}))
    await bus.drain()
    assert len(receiver.received) == 3  # webhook_max_attempts
    [letter] = dead_letters(bus)
    assert letter.attempts == 3 and letter.error == "HTTP 500"
    assert letter.event["data"] == {"person_id": "p9"}
    name = sink_name(receiver.url)
    assert metrics.registry.get_sample_value("facerec_webhook_dead_letters_total", {"sink": name})
    assert metrics.registry.get_sample_value("facerec_events_failed_total", {"sink": name}) == 1
    await bus.close()


async def test_a_4xx_is_not_retried(receiver: Receiver) -> None:
    receiver.default = 400
    bus = build_event_bus(settings(receiver.url))
    bus.start()
    bus.publish(Event(IDENTIFICATION, "acme", "staff", {}))
    await bus.drain()
    await bus.close()
    assert len(receiver.received) == 1
    assert dead_letters(bus)[0].error.endswith("HTTP 400 (not retried)")


async def test_unreachable_receiver_never_blocks_and_is_dead_lettered() -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody"
    bus = build_event_bus(settings(url, webhook_max_attempts=2, dead_letters_kept=5))
    bus.start()
    started = time.perf_counter()
    for n in range(10):
        bus.publish(Event(IDENTIFICATION, "acme", "staff", {"n": n}))
    assert time.perf_counter() - started < 0.05
    await bus.drain()
    letters = dead_letters(bus)
    assert bus.failed == 10 and len(letters) == 5  # only the newest kept
    assert len({letter.event["data"]["n"] for letter in letters}) == 5
    assert all("ConnectError" in letter.error for letter in letters)
    await bus.close()


async def test_one_dead_receiver_does_not_hold_up_another(receiver: Receiver) -> None:
    slow_dead = f"http://127.0.0.1:{free_port()}/dead"
    bus = build_event_bus(settings(slow_dead, receiver.url, webhook_backoff_s=5))
    bus.start()
    for n in range(5):
        bus.publish(Event(IDENTIFICATION, "acme", "staff", {"n": n}))
    await wait_until(lambda: len(receiver.received) == 5, within_s=3)
    await bus.close(within_s=0.1)
