"""The service with MQTT configured: recognising an enrolled person reaches the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facerec.app import create_app
from facerec.events.bus import PRESENCE_FIRST_SEEN, Event
from facerec.state import AppState
from tests.api.conftest import b64, make_settings, wait_ready
from tests.events.conftest import Subscriber
from tests.images import grace_hopper_jpeg

API = "/api/face-recognition"


@pytest.fixture
def app_client(tmp_path: Path, mqtt_url: str, topic_prefix: str) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path, events={"mqtt_url": mqtt_url, "mqtt_topic_prefix": topic_prefix}
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def state_of(client: TestClient) -> AppState:
    state: AppState = client.app.state.facerec  # type: ignore[attr-defined]
    return state


def post(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(API + path, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_recognize_publishes_the_identification(
    app_client: TestClient, topic_prefix: str, subscribe: Callable[[str], Subscriber]
) -> None:
    subscriber = subscribe(f"{topic_prefix}/#")
    grace = b64(grace_hopper_jpeg())
    enrolled = post(app_client, "/add-face", person_name="Grace Hopper", face_image_base64=grace)
    answer = post(app_client, "/recognize", face_image_base64=grace)
    assert answer["best_match"]["person_id"] == enrolled["person_id"]

    topic, payload = subscriber.wait_for(lambda topic, payload: payload["type"] == "identification")
    assert topic == f"{topic_prefix}/default/default/identification"
    assert (payload["tenant"], payload["collection"]) == ("default", "default")
    data = payload["data"]
    assert data["person_id"] == enrolled["person_id"]
    assert data["person_name"] == "Grace Hopper"
    assert data["similarity"] == pytest.approx(answer["best_match"]["similarity"])
    assert not {"image", "embedding", "face_image_base64"} & set(data)
    assert len(str(payload)) < 2000  # ids, names, scores and a box: nothing like a face

    # The subscriber can get the message before the publisher's sink has its acknowledgement
    # (and counts the delivery): the counter is waited for, within a bound.
    deadline = time.monotonic() + 10.0
    metrics = app_client.get("/metrics").text
    while 'facerec_events_delivered_total{sink="mqtt"}' not in metrics:
        assert time.monotonic() < deadline, "the mqtt delivery was never counted"
        time.sleep(0.05)
        metrics = app_client.get("/metrics").text


def test_state_events_reach_the_broker(
    app_client: TestClient, topic_prefix: str, subscribe: Callable[[str], Subscriber]
) -> None:
    """The wiring alone (settings → bus → MQTT), as the streams and photos code publishes."""
    subscriber = subscribe(f"{topic_prefix}/+/+/{PRESENCE_FIRST_SEEN}")
    state_of(app_client).events.publish(
        Event(PRESENCE_FIRST_SEEN, "default", "lobby", {"track_id": 3, "stream": "cam-1"})
    )
    topic, payload = subscriber.next()
    assert topic == f"{topic_prefix}/default/lobby/{PRESENCE_FIRST_SEEN}"
    assert payload["data"] == {"track_id": 3, "stream": "cam-1"}


def test_events_are_off_by_default(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        wait_ready(client)
        assert not state_of(client).events.enabled


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from facerec.config import Settings

    monkeypatch.setenv("FACEREC_EVENTS__MQTT_URL", "mqtt://127.0.0.1:1883")
    monkeypatch.setenv("FACEREC_EVENTS__MQTT_TOPIC_PREFIX", "site-a/facerec")
    monkeypatch.setenv("FACEREC_EVENTS__WEBHOOK_URLS", '["https://hooks.example/in"]')
    monkeypatch.setenv("FACEREC_EVENTS__WEBHOOK_SECRET", "k")
    monkeypatch.setenv("FACEREC_EVENTS__WEBHOOK_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("FACEREC_EVENTS__MAX_QUEUE", "50")
    events = Settings(_env_file=None).events
    assert events.mqtt_url == "mqtt://127.0.0.1:1883"
    assert events.mqtt_topic_prefix == "site-a/facerec"
    assert events.webhook_urls == ["https://hooks.example/in"]
    assert events.webhook_secret is not None and events.webhook_secret.get_secret_value() == "k"
    assert (events.webhook_max_attempts, events.max_queue) == (7, 50)


def test_shutdown_is_bounded_with_a_dead_receiver(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        events={
            "webhook_urls": ["http://127.0.0.1:9/never"],
            "webhook_secret": "k",
            "webhook_backoff_s": 30,
        },
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        state_of(client).events.publish(Event(PRESENCE_FIRST_SEEN, "default", "lobby", {}))
        started = time.monotonic()
    assert time.monotonic() - started < 10


def test_a_stream_and_a_tagged_photo_reach_the_broker(
    app_client: TestClient, topic_prefix: str, subscribe: Callable[[str], Subscriber]
) -> None:
    """Through the real routes: a stored photo publishes photo.tagged; a camera stream in which
    Grace Hopper walks past publishes track.decided, presence.first_seen and, when the socket
    closes, presence.last_seen, all on the real broker."""
    from tests.api.test_streams import configure, frames, next_result

    subscriber = subscribe(f"{topic_prefix}/#")
    grace = b64(grace_hopper_jpeg())
    post(
        app_client,
        "/add-face",
        person_name="Grace Hopper",
        person_id="grace",
        face_image_base64=grace,
    )
    stored = app_client.post("/api/photos", json={"photo_id": "party-1", "image_base64": grace})
    assert stored.status_code in (200, 201), stored.text
    topic, payload = subscriber.wait_for(lambda topic, payload: payload["type"] == "photo.tagged")
    assert topic == f"{topic_prefix}/default/default/photo.tagged"
    assert payload["data"]["photo_id"] == "party-1"
    assert payload["data"]["faces"][0]["person_id"] == "grace"

    with app_client.websocket_connect("/ws/recognize") as ws:
        configure(ws, collection="default", source="door-1")
        for frame in frames("grace"):
            ws.send_bytes(frame)
            next_result(ws)
    seen = {}
    for kind in ("track.decided", "presence.first_seen", "presence.last_seen"):
        topic, payload = subscriber.wait_for(
            lambda topic, payload, kind=kind: payload["type"] == kind
        )
        assert topic == f"{topic_prefix}/default/default/{kind}"
        assert payload["data"]["person_id"] == "grace" and payload["data"]["source"] == "door-1"
        seen[kind] = payload["data"]
    assert seen["presence.last_seen"]["frames"] == 6
    assert "image" not in str(seen) and "embedding" not in str(seen)
