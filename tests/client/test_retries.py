"""Retries, Idempotency-Key and the typed error, on a scripted transport (no service needed)."""

from __future__ import annotations

import httpx
import pytest

from facerec.client import AsyncFaceRecClient, FaceRecApiError, FaceRecClient, _core
from tests.images import grace_hopper_jpeg

ADD_FACE_OK = {
    "success": True,
    "person_id": "p1",
    "person_name": "Grace",
    "face_id": "f1",
    "embedding_extracted": True,
    "model_used": "dlib_resnet",
    "embedding_space": "dlib_resnet@1",
    "face_quality": 90.0,
    "face": {
        "bbox": {"x1": 0, "y1": 0, "x2": 10, "y2": 10, "width": 10, "height": 10},
        "confidence": 0.99,
        "quality": {"score": 90.0, "factors": {}, "reasons": []},
    },
    "person": {
        "person_id": "p1",
        "person_name": "Grace",
        "collection": "default",
        "face_count": 1,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    },
    "warnings": [],
    "processing_time": 0.1,
}


def busy(retry_after: str | None) -> httpx.Response:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    body = {"success": False, "error": {"code": "overloaded", "message": "busy", "details": {}}}
    return httpx.Response(429, json=body, headers=headers)


class Script:
    """Answers from a list, recording each request."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr("facerec.client.senders.time.sleep", waited.append)
    return waited


def test_429_is_retried_after_retry_after_with_the_same_idempotency_key(
    sleeps: list[float],
) -> None:
    script = Script(busy("2"), busy("5000"), httpx.Response(200, json=ADD_FACE_OK))
    client = FaceRecClient(api_key="fk_test", transport=httpx.MockTransport(script))
    done = client.add_face(grace_hopper_jpeg(), "Grace")
    assert done.face_id == "f1" and done.person.person_name == "Grace"
    assert sleeps == [2.0, _core.MAX_RETRY_WAIT_S]  # Retry-After honoured, and bounded
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1  # one key for every attempt
    assert all(r.headers["X-API-Key"] == "fk_test" for r in script.requests)


def test_each_enrollment_gets_its_own_key_and_reads_get_none(sleeps: list[float]) -> None:
    script = Script(*(httpx.Response(200, json=ADD_FACE_OK) for _ in range(2)))
    client = FaceRecClient(transport=httpx.MockTransport(script))
    client.add_face_upload(grace_hopper_jpeg(), "Grace")
    client.add_face_upload(grace_hopper_jpeg(), "Grace")
    first, second = (r.headers["Idempotency-Key"] for r in script.requests)
    assert first != second
    script.answers.append(httpx.Response(200, json={"status": "ok", "version": "x"}))
    client.health()
    assert "Idempotency-Key" not in script.requests[-1].headers


def test_retries_are_bounded_then_the_error_is_typed(sleeps: list[float]) -> None:
    script = Script(busy(None), busy(None), busy(None))
    client = FaceRecClient(retries=2, transport=httpx.MockTransport(script))
    with pytest.raises(FaceRecApiError) as caught:
        client.recognize(grace_hopper_jpeg())
    assert caught.value.status == 429 and caught.value.code == "overloaded"
    assert caught.value.message == "busy" and caught.value.details == {}
    assert sleeps == [0.5, 1.0]  # no Retry-After: exponential backoff


def test_an_answer_without_the_envelope_is_still_a_typed_error() -> None:
    client = FaceRecClient(transport=httpx.MockTransport(lambda r: httpx.Response(502, text="x")))
    with pytest.raises(FaceRecApiError) as caught:
        client.models()
    assert caught.value.status == 502 and caught.value.code == "http_502"


async def test_async_client_retries_503_too(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr("facerec.client.senders.asyncio.sleep", sleep)
    unready = httpx.Response(
        503,
        json={"success": False, "error": {"code": "not_ready", "message": "", "details": {}}},
        headers={"Retry-After": "1"},
    )
    script = Script(unready, httpx.Response(200, json=ADD_FACE_OK))

    async def handler(request: httpx.Request) -> httpx.Response:
        return script(request)

    async with AsyncFaceRecClient(transport=httpx.MockTransport(handler)) as client:
        done = await client.add_face_upload(grace_hopper_jpeg(), "Grace")
    assert done.face_id == "f1" and waited == [1.0]
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1
