"""The bytes of request bodies one process holds at once (``limits.max_body_bytes_in_flight``):
a body that would pass them is cut off with 429 ``overloaded``; what a request held is given
back when it is answered, failed or not, and the next request is served."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from bench.server import multipart_body
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from facerec.api.body_limit import BodyBudget, BodyLimitMiddleware
from facerec.app import create_app
from tests.api.conftest import b64, make_settings
from tests.images import grace_hopper_jpeg

LIMIT = 1000  # per request
BUDGET = 2500  # all requests at once
CHUNK = 100


class Held:
    """An app whose ``/hold`` reads its body, counts it, and answers once released."""

    def __init__(self, holders: int = 2) -> None:
        self.holders = holders
        self.reads = 0
        self.all_read = asyncio.Event()
        self.release = asyncio.Event()
        self.echoes = 0  # /echo calls that reached the handler

    async def hold(self, request: Request) -> JSONResponse:
        body = await request.body()
        self.reads += 1
        if self.reads == self.holders:
            self.all_read.set()
        await self.release.wait()
        return JSONResponse({"bytes": len(body)})

    async def echo(self, request: Request) -> JSONResponse:
        self.echoes += 1
        return JSONResponse({"bytes": len(await request.body())})

    async def fail(self, request: Request) -> JSONResponse:
        await request.body()
        raise RuntimeError("the handler failed after reading its body")


def _middleware(held: Held) -> BodyLimitMiddleware:
    app = Starlette(
        routes=[
            Route("/hold", held.hold, methods=["POST"]),
            Route("/echo", held.echo, methods=["POST"]),
            Route("/fail", held.fail, methods=["POST"]),
        ]
    )
    return BodyLimitMiddleware(app, default=LIMIT, per_route={}, in_flight=BUDGET)


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(total // CHUNK):
        yield b"x" * CHUNK


def _client(app: BodyLimitMiddleware) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_a_body_past_what_the_process_holds_is_429_and_served_once_room_is_back() -> None:
    held = Held()
    app = _middleware(held)
    async with _client(app) as client:
        holders = [asyncio.create_task(client.post("/hold", content=b"a" * 900)) for _ in range(2)]
        await asyncio.wait_for(held.all_read.wait(), 10)  # both read, neither answered yet
        assert app.budget.held == 1800
        refused = await client.post("/echo", content=_chunks(1000))  # chunked: counted as read
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "overloaded"
        assert error["details"] == {"in_flight_limit_bytes": BUDGET}
        assert refused.headers["retry-after"] == "1"
        assert "close" not in refused.headers.get("connection", "")  # the rest is dropped
        assert app.budget.held == 1800  # the refused body's bytes were given back
        assert held.echoes == 1  # refused while its handler read it
        declared = await client.post("/echo", content=b"d" * 800)  # Content-Length: 800
        assert declared.status_code == 429
        assert held.echoes == 1  # refused before anything read it
        small = await client.post("/echo", content=b"b" * 500)  # fits beside the two
        assert small.status_code == 200 and small.json() == {"bytes": 500}
        held.release.set()
        assert [r.json() for r in await asyncio.gather(*holders)] == [{"bytes": 900}] * 2
        assert app.budget.held == 0
        served = await client.post("/echo", content=_chunks(1000))
        assert served.status_code == 200 and served.json() == {"bytes": 1000}


async def test_a_failed_request_gives_its_bytes_back() -> None:
    app = _middleware(Held())
    async with _client(app) as client:
        response = await client.post("/fail", content=b"c" * 900)
        assert response.status_code == 500
        assert app.budget.held == 0
        too_large = await client.post("/echo", content=_chunks(2000))
        assert too_large.status_code == 413
        assert too_large.json()["error"]["code"] == "payload_too_large"
        assert app.budget.held == 0


def test_the_budget_is_never_below_a_route_limit() -> None:
    app = BodyLimitMiddleware(
        Starlette(), default=LIMIT, per_route={"/many": 5 * LIMIT}, in_flight=CHUNK
    )
    assert app.budget.limit == 5 * LIMIT


def test_the_service_wires_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings = settings.model_copy(
        update={
            "limits": settings.limits.model_copy(update={"max_body_bytes_in_flight": 300 << 20})
        }
    )
    app = create_app(settings)
    (wired,) = [m for m in app.user_middleware if m.cls is BodyLimitMiddleware]
    assert wired.kwargs["in_flight"] == 300 << 20


def _budget_of(app: object) -> BodyBudget:
    """The running app's body budget (its middleware stack, built at start-up)."""
    layer = getattr(app, "middleware_stack", None)
    while layer is not None and not isinstance(layer, BodyLimitMiddleware):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, BodyLimitMiddleware)
    return layer.budget


def _in_parts(body: bytes, size: int = 10_000) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length): counted as it arrives."""
    for at in range(0, len(body), size):
        yield body[at : at + size]


def test_the_service_refuses_a_body_past_the_budget_by_route_and_form(client: TestClient) -> None:
    """The real app, its budget all but taken: a chunked JSON body, a chunked multipart upload and
    a declared one get 429 ``overloaded`` (never a 400 or 500 from the parser it cut off); with the
    room back, the same requests are served."""
    budget = _budget_of(client.app)
    photo = grace_hopper_jpeg()
    form, content_type = multipart_body(photo)
    json_body = json.dumps({"image_base64": b64(photo)}).encode()
    sends = {
        "json, chunked": lambda: client.post(
            "/api/face-detection/detect",
            content=_in_parts(json_body),
            headers={"content-type": "application/json"},
        ),
        "upload, chunked": lambda: client.post(
            "/api/face-detection/detect-upload",
            content=_in_parts(form),
            headers={"content-type": content_type},
        ),
        "upload, declared": lambda: client.post(
            "/api/face-detection/detect-upload",
            content=form,
            headers={"content-type": content_type},
        ),
    }
    taken = budget.limit - 20_000
    assert budget.take(taken)
    try:
        for label, send in sends.items():
            response = send()
            assert response.status_code == 429, (label, response.text)
            assert response.json()["error"]["code"] == "overloaded", label
            assert budget.held == taken, label  # what the refused body read was given back
    finally:
        budget.give_back(taken)
    for label, send in sends.items():
        response = send()
        assert response.status_code == 200, (label, response.text)
        assert response.json()["faces_detected"] == 1, label
    assert budget.held == 0
