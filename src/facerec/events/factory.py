"""Builds the event bus from ``Settings.events``: MQTT when a URL is set, one sink per webhook URL.

Nothing connects here; :meth:`EventBus.start` (in the app's lifespan) does.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from facerec.config import EventSettings
from facerec.events.bus import EventBus, EventCounters, EventSink
from facerec.events.mqtt import MqttSink
from facerec.events.webhooks import DeadLetter, WebhookSink, sink_name


class EventMetrics(EventCounters, Protocol):
    def webhook_dead_letter(self, sink: str) -> None: ...


def build_event_bus(settings: EventSettings, metrics: EventMetrics | None = None) -> EventBus:
    sinks: list[EventSink] = []
    if settings.mqtt_url:
        sinks.append(
            MqttSink(
                settings.mqtt_url,
                topic_prefix=settings.mqtt_topic_prefix,
                qos=settings.mqtt_qos,
                client_id=settings.mqtt_client_id,
                keepalive_s=settings.mqtt_keepalive_s,
                ack_timeout_s=settings.mqtt_ack_timeout_s,
                max_buffered=settings.mqtt_max_buffered,
                reconnect_min_s=settings.mqtt_reconnect_min_s,
                reconnect_max_s=max(settings.mqtt_reconnect_max_s, settings.mqtt_reconnect_min_s),
            )
        )
    dead_letters: deque[DeadLetter] = deque(maxlen=settings.dead_letters_kept)
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else b""
    names: set[str] = set()
    for index, url in enumerate(settings.webhook_urls):
        name = sink_name(url)
        if name in names:  # the same host and path twice (differing in the query string)
            name = f"{name}#{index}"
        names.add(name)
        sinks.append(
            WebhookSink(
                url,
                secret,
                name=name,
                timeout_s=settings.webhook_timeout_s,
                max_attempts=settings.webhook_max_attempts,
                backoff_s=settings.webhook_backoff_s,
                backoff_max_s=settings.webhook_backoff_max_s,
                concurrency=settings.webhook_concurrency,
                dead_letters=dead_letters,
                on_dead_letter=metrics.webhook_dead_letter if metrics is not None else None,
            )
        )
    return EventBus(sinks, max_queue=settings.max_queue, counters=metrics)


def dead_letters(bus: EventBus) -> list[DeadLetter]:
    """Every webhook dead letter the bus still keeps, oldest first (for an admin view)."""
    seen: dict[int, deque[DeadLetter]] = {}
    for sink in bus.sinks:
        if isinstance(sink, WebhookSink):
            seen[id(sink.dead_letters)] = sink.dead_letters
    letters = [letter for kept in seen.values() for letter in kept]
    return sorted(letters, key=lambda letter: letter.at)
