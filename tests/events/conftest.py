"""Helpers for the event tests: the real MQTT broker, a subscriber on it, a webhook receiver.

The broker is the machine's Mosquitto (127.0.0.1:1883, or FACEREC_TEST_MQTT_URL); without it the
MQTT tests skip here and fail in CI (``.ci/run`` starts it).
"""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from facerec.events.mqtt import MqttTarget
from tests.conftest import unavailable

MQTT_URL = os.environ.get("FACEREC_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def broker_reachable(url: str) -> bool:
    target = MqttTarget.from_url(url)
    try:
        with socket.create_connection((target.host, target.port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    if not broker_reachable(MQTT_URL):
        unavailable(
            f"the MQTT broker at {MQTT_URL}",
            "start Mosquitto (mosquitto -d -c /etc/mosquitto/mosquitto.conf) "
            "or set FACEREC_TEST_MQTT_URL",
        )
    return MQTT_URL


@pytest.fixture
def topic_prefix() -> str:
    """A prefix of this test's own, so runs sharing the broker never see each other's events."""
    return f"facerec-test/{uuid.uuid4().hex[:12]}"


class Subscriber:
    """A plain paho client subscribed (QoS 1) to ``topic``, collecting (topic, JSON) pairs."""

    def __init__(self, url: str, topic: str) -> None:
        target = MqttTarget.from_url(url)
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4()}")
        self._client.on_message = lambda c, u, msg: self.messages.put(
            (msg.topic, json.loads(msg.payload))
        )
        self._client.on_subscribe = lambda c, u, mid, codes, props: self._subscribed.set()
        self._client.connect(target.host, target.port, keepalive=30)
        self._client.subscribe(topic, qos=1)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError(f"no SUBACK for {topic}")

    def next(self, timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no MQTT message within {timeout} s") from None

    def wait_for(
        self, accept: Callable[[str, dict[str, Any]], bool], timeout: float = 15.0
    ) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            topic, payload = self.next(left)
            if accept(topic, payload):
                return topic, payload
        raise AssertionError(f"no matching MQTT message within {timeout} s")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def subscribe(mqtt_url: str) -> Iterator[Callable[[str], Subscriber]]:
    subscribers: list[Subscriber] = []

    def make(topic: str) -> Subscriber:
        subscribers.append(Subscriber(mqtt_url, topic))
        return subscribers[-1]

    yield make
    for subscriber in subscribers:
        subscriber.close()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers the scripted statuses in turn, then ``default``."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    default: int = 200
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, request: Received) -> int:
        with self.lock:
            self.received.append(request)
            return self.script.pop(0) if self.script else self.default


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = state.answer(Received(dict(self.headers.items()), body, time.monotonic()))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/facerec"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
