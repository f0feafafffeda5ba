"""MQTT sink: each event as JSON on ``<prefix>/<tenant>/<collection>/<type>``, QoS 1.

paho-mqtt's network thread connects, keeps alive and reconnects by itself (backoff from
``reconnect_min_s`` doubling to ``reconnect_max_s``). ``deliver`` runs on the event loop and never
waits on the network: it hands the message to paho and awaits the broker's PUBACK through a
future resolved from paho's thread, at most ``ack_timeout_s``. While the broker cannot be
reached it fails at once (the bus counts the event as failed): nothing piles up behind an
outage beyond paho's bounded queue of ``max_buffered`` unacknowledged messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from facerec.events.bus import Event

log = logging.getLogger(__name__)

# Characters a topic level cannot hold (wildcards, the level separator, NUL).
_TOPIC_UNSAFE = str.maketrans({"+": "_", "#": "_", "/": "_", "\0": "_"})


class MqttUnavailableError(ConnectionError):
    """The broker cannot be reached now (the event is counted as failed)."""


@dataclass(frozen=True)
class MqttTarget:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> MqttTarget:
        """``mqtt://[user[:password]@]host[:1883]`` or ``mqtts://...[:8883]`` (TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"not an MQTT URL (mqtt://host:port or mqtts://...): {url!r}")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def topic_for(prefix: str, event: Event) -> str:
    levels = (event.tenant, event.collection, event.type)
    return "/".join([prefix.strip("/"), *(level.translate(_TOPIC_UNSAFE) for level in levels)])


def encode(event: Event) -> bytes:
    return json.dumps(event.as_dict(), separators=(",", ":"), ensure_ascii=False).encode()


class MqttSink:
    def __init__(
        self,
        url: str,
        *,
        topic_prefix: str = "facerec",
        qos: int = 1,
        client_id: str | None = None,
        keepalive_s: int = 30,
        ack_timeout_s: float = 10.0,
        max_buffered: int = 1000,
        concurrency: int = 32,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 30,
    ) -> None:
        self.target = MqttTarget.from_url(url)
        self.name = "mqtt"
        self.topic_prefix = topic_prefix
        self.qos = qos
        self.concurrency = concurrency
        self.ack_timeout_s = ack_timeout_s
        self.keepalive_s = keepalive_s
        self._connected = threading.Event()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"facerec-{os.getpid()}-{uuid.uuid4().hex[:8]}",
            protocol=paho.MQTTv311,
        )
        self._client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        self._client.max_queued_messages_set(max_buffered)
        self._client.max_inflight_messages_set(max(concurrency, 1))
        if self.target.username is not None:
            self._client.username_pw_set(self.target.username, self.target.password)
        if self.target.tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> None:
        """Connect in the background (paho's thread); never blocks, retries until closed."""
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.target.host, self.target.port, self.keepalive_s)
        self._client.loop_start()

    async def wait_connected(self, within_s: float) -> bool:
        """True once connected (tests and start-up checks), False after ``within_s``."""
        return await asyncio.to_thread(self._connected.wait, within_s)

    async def deliver(self, event: Event) -> None:
        if not self._connected.is_set():
            raise MqttUnavailableError(
                f"MQTT broker {self.target.host}:{self.target.port} unreachable"
            )
        info = self._client.publish(topic_for(self.topic_prefix, event), encode(event), self.qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttUnavailableError(f"MQTT publish refused: {paho.error_string(info.rc)}")
        # PUBACK can only be handled after this coroutine yields (call_soon_threadsafe), so the
        # future is always registered before its acknowledgement is looked up.
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[info.mid] = ack
        try:
            await asyncio.wait_for(ack, self.ack_timeout_s)
        except TimeoutError:
            raise MqttUnavailableError(f"no PUBACK within {self.ack_timeout_s} s") from None
        finally:
            self._acks.pop(info.mid, None)

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._closing = True
        self._client.disconnect()
        # loop_stop joins paho's thread; bounded, the thread is a daemon anyway.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self._client.loop_stop), 5.0)
        self._connected.clear()

    # paho's network thread below: hand everything over to the event loop.

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT broker %s refused the connection: %s", self.target.host, reason)
            return
        self._connected.set()
        log.info("MQTT connected to %s:%d", self.target.host, self.target.port)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if self._connected.is_set() and not self._closing:
            log.warning("MQTT disconnected from %s (%s); reconnecting", self.target.host, reason)
        self._connected.clear()
        # Messages awaiting PUBACK fail now rather than at their timeout (paho may still resend
        # them after reconnecting: QoS 1 is at least once).
        self._call_on_loop(self._fail_pending)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        self._call_on_loop(self._acknowledged, mid)

    def _call_on_loop(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(callback, *args)

    def _acknowledged(self, mid: int) -> None:
        ack = self._acks.get(mid)
        if ack is not None and not ack.done():
            ack.set_result(None)

    def _fail_pending(self) -> None:
        for ack in self._acks.values():
            if not ack.done():
                ack.set_exception(MqttUnavailableError("disconnected before PUBACK"))
