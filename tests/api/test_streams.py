"""``/ws/recognize`` through a real app: tracks and voted identities over frames made from real
photos moving across a canvas, backpressure, bad frames, protocol violations and their close
codes, idle timeout, access and tenants."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from PIL import Image
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from facerec.app import create_app
from facerec.auth.keys import KeySpec
from facerec.events.bus import Event
from facerec.state import AppState
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import astronaut_rgb, blank_png, encode, grace_hopper_jpeg, grace_hopper_rgb

WS = "/ws/recognize"
API = "/api/face-recognition"
STREAMS = {"max_fps": 30, "max_message_bytes": 1024 * 1024, "max_frame_pixels": 2_000_000}


def state_of(client: TestClient) -> AppState:
    state: AppState = client.app.state.facerec  # type: ignore[attr-defined]
    return state


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("streams"), streams=STREAMS)
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        enrolled = test_client.post(
            API + "/add-face",
            json={
                "person_name": "Grace Hopper",
                "person_id": "grace",
                "face_image_base64": b64(grace_hopper_jpeg()),
            },
        )
        assert enrolled.status_code == 200, enrolled.text
        yield test_client


@pytest.fixture
def events(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    published: list[Event] = []
    monkeypatch.setattr(state_of(client).events, "publish", published.append)
    return published


@functools.cache
def frames(kind: str, count: int = 6) -> list[bytes]:
    """A real photo moving right and shrinking across a grey 960x720 canvas, as JPEG frames."""
    photo: NDArray[np.uint8] = grace_hopper_rgb() if kind == "grace" else astronaut_rgb()
    out = []
    for i in range(count):
        scale = 0.8 - 0.03 * i
        image = Image.fromarray(photo)
        image = image.resize((int(image.width * scale), int(image.height * scale)))
        canvas = Image.new("RGB", (960, 720), (120, 120, 120))
        canvas.paste(image, (40 + 45 * i, 60 + 10 * i))
        out.append(encode(canvas, "JPEG", quality=85))
    return out


def configure(ws: WebSocketTestSession, **config: Any) -> dict[str, Any]:
    ws.send_json({"type": "config", **config})
    ready: dict[str, Any] = ws.receive_json()
    assert ready["type"] == "ready", ready
    return ready


def next_result(ws: WebSocketTestSession) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = ws.receive_json()
        if message["type"] in ("result", "error"):
            return message


def closed_with(ws: WebSocketTestSession, close_code: int, code: str) -> None:
    """The server's last word: an error message with ``code``, then the close frame."""
    error = ws.receive_json()
    assert error["type"] == "error" and error["code"] == code, error
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == close_code
    assert closed.value.reason == code


def wait_for(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# --- identities ---------------------------------------------------------------------------------


def test_a_moving_person_keeps_one_track_and_is_named(
    client: TestClient, events: list[Event]
) -> None:
    with client.websocket_connect(WS) as ws:
        ready = configure(ws, collection="default", source="door-1")
        assert ready["model_used"] == "dlib_resnet" and ready["max_fps"] == 30
        results = []
        for frame in frames("grace"):
            ws.send_bytes(frame)
            results.append(next_result(ws))
    assert [r["type"] for r in results] == ["result"] * 6
    assert [r["frame"] for r in results] == [1, 2, 3, 4, 5, 6]
    assert all(r["dropped"] == 0 and r["processing_time"] > 0 for r in results)
    faces = [r["faces"] for r in results]
    assert all(len(f) == 1 for f in faces)
    assert len({f[0]["track_id"] for f in faces}) == 1
    first, last = faces[0][0], faces[-1][0]
    assert not first["decided"] and first["person_id"] is None  # one frame is not enough mass
    assert last["decided"] and not last["unknown"]
    assert (last["person_id"], last["person_name"]) == ("grace", "Grace Hopper")
    assert last["similarity"] > 0.5
    votes = last["votes"]
    assert 0 < votes["mass"] <= votes["total"] and votes["frames"] == 6
    assert faces[0][0]["bbox"]["x1"] < last["bbox"]["x1"]  # she moved right

    wait_for(lambda: any(e.type == "presence.last_seen" for e in events))
    kinds = [e.type for e in events]
    assert kinds == ["track.decided", "presence.first_seen", "presence.last_seen"]
    for event in events:
        assert event.tenant == "default" and event.collection == "default"
        assert event.data["person_id"] == "grace" and event.data["person_name"] == "Grace Hopper"
        assert event.data["source"] == "door-1" and event.data["track_id"] == first["track_id"]
        text = json.dumps(event.as_dict())
        assert "image" not in text and "embedding" not in text
    assert events[2].data["frames"] == 6
    assert events[2].data["first_seen"] <= events[2].data["last_seen"]


def test_an_unknown_face_stays_unknown(client: TestClient, events: list[Event]) -> None:
    with client.websocket_connect(WS) as ws:
        configure(ws)
        results = []
        for frame in frames("astronaut"):
            ws.send_json({"image_base64": b64(frame)})  # the JSON form of a frame
            results.append(next_result(ws))
    tracks = {r["faces"][0]["track_id"] for r in results}
    assert len(tracks) == 1
    assert all(r["faces"][0]["person_id"] is None for r in results)
    last = results[-1]["faces"][0]
    assert last["decided"] and last["unknown"] and last["similarity"] is None
    wait_for(lambda: len(events) >= 1)
    assert [e.type for e in events] == ["track.decided"]  # no presence for a stranger
    assert events[0].data["unknown"] is True and events[0].data["person_id"] is None


# --- backpressure -------------------------------------------------------------------------------


def test_a_flood_is_dropped_and_counted_while_others_are_answered(client: TestClient) -> None:
    grace = frames("grace")
    with client.websocket_connect(WS) as fast, client.websocket_connect(WS) as other:
        configure(fast, max_fps=2)
        configure(other)
        for i in range(30):
            fast.send_bytes(grace[i % len(grace)])
        # While the flood is being dropped, another socket and REST calls are answered.
        other.send_bytes(grace[0])
        answer = next_result(other)
        assert answer["type"] == "result" and answer["dropped"] == 0 and answer["faces"]
        assert client.get("/api/models").status_code == 200
        results: list[dict[str, Any]] = []
        while not results or results[-1]["frame"] != 30:
            results.append(next_result(fast))
    assert all(r["type"] == "result" for r in results)
    assert results[-1]["dropped"] + len(results) == 30  # every frame answered or counted
    assert results[-1]["dropped"] >= 25  # max_fps=2: the newest frame wins, the rest are dropped


def test_a_full_executor_drops_the_frame_instead_of_queueing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = state_of(client).executor
    with client.websocket_connect(WS) as ws:
        configure(ws)
        with monkeypatch.context() as patch:
            patch.setattr(executor, "_max_pending", 0)  # every job is refused: full
            ws.send_bytes(frames("grace")[0])
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}
            wait_for(lambda: executor.pending == 0)
            time.sleep(0.2)  # the processing loop has taken and dropped frame 1
        ws.send_bytes(frames("grace")[1])
        result = next_result(ws)
    assert result["type"] == "result" and result["frame"] == 2 and result["dropped"] == 1


# --- bad frames and protocol --------------------------------------------------------------------


def test_a_bad_frame_gets_an_error_and_the_socket_stays_open(client: TestClient) -> None:
    grace = grace_hopper_jpeg()
    with client.websocket_connect(WS) as ws:
        configure(ws)
        ws.send_bytes(b"this is not an image")
        assert ws.receive_json() == {
            "type": "error",
            "code": "unsupported_format",
            "message": "a frame must be a JPEG or PNG image",
            "frame": 1,
            "details": {"format": None},
        }
        ws.send_json({"image_base64": "@@@not base64@@@"})
        error = ws.receive_json()
        assert (error["code"], error["frame"]) == ("invalid_base64", 2)
        ws.send_json({"image_base64": b64(grace), "extra": 1})
        assert ws.receive_json()["code"] == "invalid_frame"
        ws.send_bytes(blank_png(2000, 1500))  # 3 MP > max_frame_pixels
        error = ws.receive_json()
        assert (error["code"], error["frame"]) == ("frame_too_large", 4)
        ws.send_bytes(grace[: len(grace) // 3])  # a truncated JPEG fails when decoded
        error = next_result(ws)
        assert error["type"] == "error" and error["frame"] == 5, error
        ws.send_json({"type": "config"})
        assert ws.receive_json()["code"] == "config_already_set"
        ws.send_bytes(frames("grace")[0])
        result = next_result(ws)
        assert result["type"] == "result" and result["frame"] == 6 and result["faces"]


@pytest.mark.parametrize(
    ("first", "close_code", "code"),
    [
        (b"\xff\xd8\xff binary before the config", 1003, "config_expected"),
        ("not json", 1003, "invalid_json"),
        ("[" * 100_000, 1003, "invalid_json"),  # nested past the parsers' recursion limits
        ("[1, 2]", 1003, "invalid_message"),
        ('{"type": "frame", "image_base64": "AAAA"}', 1003, "config_expected"),
        ('{"type": "config", "max_fps": -1}', 4400, "invalid_config"),
        ('{"type": "config", "colour": "red"}', 4400, "invalid_config"),
        ('{"type": "config", "model_name": "nope"}', 4400, "unknown_model"),
        ('{"type": "config", "collection": "nope"}', 4404, "collection_not_found"),
        ('{"type": "config", "collection": "bad~name"}', 4400, "invalid_collection_name"),
        ('{"type": "config", "check_liveness": true}', 4503, "liveness_unavailable"),
    ],
)
def test_a_bad_first_message_closes(
    client: TestClient, first: str | bytes, close_code: int, code: str
) -> None:
    with client.websocket_connect(WS) as ws:
        if isinstance(first, bytes):
            ws.send_bytes(first)
        else:
            ws.send_text(first)
        closed_with(ws, close_code, code)


@pytest.mark.parametrize(
    ("message", "close_code", "code"),
    [
        ("hello", 1003, "invalid_json"),
        ('{"type": "dance"}', 1003, "unknown_message_type"),
        ('{"image": "x"}', 1003, "unknown_message_type"),
    ],
)
def test_a_protocol_violation_closes(
    client: TestClient, message: str, close_code: int, code: str
) -> None:
    with client.websocket_connect(WS) as ws:
        configure(ws)
        ws.send_text(message)
        closed_with(ws, close_code, code)


def test_an_oversized_message_closes_with_1009(client: TestClient) -> None:
    limit = STREAMS["max_message_bytes"]
    with client.websocket_connect(WS) as ws:
        configure(ws)
        ws.send_bytes(b"\xff\xd8\xff" + bytes(limit))
        closed_with(ws, 1009, "message_too_big")
    with client.websocket_connect(WS) as ws:
        ws.send_text(json.dumps({"type": "config", "source": "x" * limit}))
        closed_with(ws, 1009, "message_too_big")


def test_an_idle_socket_times_out(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_of(client).settings.streams, "idle_timeout_seconds", 0.3)
    with client.websocket_connect(WS) as ws:  # silent before the config
        closed_with(ws, 4408, "idle_timeout")
    with client.websocket_connect(WS) as ws:
        ready = configure(ws)
        assert ready["idle_timeout_seconds"] == 0.3
        for _ in range(3):  # pings keep it open
            time.sleep(0.15)
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}
        closed_with(ws, 4408, "idle_timeout")


def test_a_plain_get_is_told_to_upgrade(client: TestClient) -> None:
    response = client.get(WS)
    assert response.status_code == 426 and response.headers["Upgrade"] == "websocket"
    assert response.json()["error"]["code"] == "upgrade_required"


# --- access -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path_factory.mktemp("streams-auth"), auth={"required": True}, streams=STREAMS
    )
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def key(
    client: TestClient, tenant: str, *scopes: str, collections: frozenset[str] | None = None
) -> dict[str, str]:
    auth = state_of(client).auth
    assert auth is not None
    spec = KeySpec(tenant=tenant, scopes=frozenset(scopes), collections=collections)
    text, _ = client.portal.call(functools.partial(auth.keys.create, spec, created_by="test"))
    return {"X-API-Key": text}


def refused(client: TestClient, headers: dict[str, str], reason: str) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect(WS, headers=headers),
    ):
        pass
    assert (closed.value.code, closed.value.reason) == (1008, reason)


def test_keys_scopes_and_tenants(secured: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    refused(secured, {}, "unauthorized")
    refused(secured, {"X-API-Key": "fk_not_a_key"}, "invalid_api_key")
    refused(secured, key(secured, "acme", "detect", "enroll"), "insufficient_scope")
    assert secured.get(WS).status_code == 401
    assert secured.get(WS, headers=key(secured, "acme", "detect")).status_code == 403

    acme = key(secured, "acme", "recognize", "enroll", "manage")
    assert secured.get(WS, headers=acme).status_code == 426
    made = secured.post(API + "/collections", json={"name": "staff"}, headers=acme)
    assert made.status_code in (200, 201), made.text
    enrolled = secured.post(
        API + "/add-face",
        json={
            "person_name": "Grace",
            "person_id": "g1",
            "face_image_base64": b64(grace_hopper_jpeg()),
        },
        headers=acme,
    )
    assert enrolled.status_code == 200, enrolled.text
    published: list[Event] = []
    monkeypatch.setattr(state_of(secured).events, "publish", published.append)
    bearer = {"Authorization": "Bearer " + acme["X-API-Key"]}
    with secured.websocket_connect(WS, headers=bearer) as ws:
        configure(ws)
        for frame in frames("grace")[:4]:
            ws.send_bytes(frame)
            last = next_result(ws)
    face = last["faces"][0]
    assert face["decided"] and face["person_id"] == "g1"  # the id as the tenant knows it
    wait_for(lambda: any(e.type == "presence.first_seen" for e in published))
    assert {(e.tenant, e.data["person_id"]) for e in published} == {("acme", "g1")}

    # Another tenant cannot name acme's collection, nor find acme's person in its own.
    globex = key(secured, "globex", "recognize")
    with secured.websocket_connect(WS, headers=globex) as ws:
        ws.send_json({"type": "config", "collection": "staff"})
        closed_with(ws, 4404, "collection_not_found")
    with secured.websocket_connect(WS, headers=globex) as ws:
        configure(ws)
        for frame in frames("grace")[:3]:
            ws.send_bytes(frame)
            last = next_result(ws)
    assert last["faces"][0]["unknown"]
    # A key limited to some collections may not stream from the others.
    door = key(secured, "acme", "recognize", collections=frozenset({"door"}))
    with secured.websocket_connect(WS, headers=door) as ws:
        ws.send_json({"type": "config", "collection": "staff"})
        closed_with(ws, 4403, "collection_forbidden")


def test_frames_are_never_hashed_into_the_result_cache(client: TestClient) -> None:
    outcomes: list[str] = []
    queries = state_of(client).queries
    before = queries._on_cache
    queries._on_cache = outcomes.append
    try:
        with client.websocket_connect(WS) as ws:
            configure(ws)
            for frame in frames("grace")[:2] * 2:
                ws.send_bytes(frame)
                assert next_result(ws)["type"] == "result"
    finally:
        queries._on_cache = before
    assert outcomes == []


def test_blank_frames_answer_no_faces(client: TestClient) -> None:
    blank = encode(np.full((240, 320, 3), 90, np.uint8), "JPEG")
    with client.websocket_connect(WS) as ws:
        configure(ws)
        ws.send_bytes(blank)
        result = next_result(ws)
    assert result["type"] == "result" and result["faces"] == []
