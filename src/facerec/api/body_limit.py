"""The request body limits, in one middleware: each body within its route's limit (413
``payload_too_large``), and the bodies one worker process holds at once within
``limits.max_body_bytes_in_flight`` (429 ``overloaded``).

A body is held in memory from its first byte until its request is answered (its bytes, then its
parsed JSON or form, then the image), so without the second limit many clients sending large
bodies at once could take any amount of memory, each of them within its own limit.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facerec.api.errors import envelope
from facerec.config import Settings

# Base64 inflates by 4/3; JSON fields and whitespace add a little more.
BODY_OVERHEAD = 1.5
BODY_SLACK = 64 * 1024
# Routes whose body carries more than one image: how many.
IMAGES_PER_ROUTE = {"/api/face-recognition/compare": 2, "/api/face-recognition/compare-upload": 2}
REGISTER_MULTIPLE = "/api/face-recognition/register-multiple"
# A body is buffered in memory several times over (chunks, the joined body, its parsed JSON):
# one request's body may take at most this share of ``limits.max_request_memory_mb``.
BODY_MEMORY_SHARE = 4


def body_limits(settings: Settings) -> tuple[int, dict[str, int]]:
    """The default body limit (one image) and the larger ones of routes taking several."""
    limits = settings.limits
    one = int(limits.max_upload_bytes * BODY_OVERHEAD) + BODY_SLACK
    per_route = {path: n * one for path, n in IMAGES_PER_ROUTE.items()}
    memory_cap = limits.max_request_memory_mb * 1024 * 1024 // BODY_MEMORY_SHARE
    per_route[REGISTER_MULTIPLE] = max(one, min(limits.max_images_per_request * one, memory_cap))
    return one, per_route


class BodyBudget:
    """Bytes of request bodies this process's requests hold at once (one event loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def fits(self, size: int) -> bool:
        return self.held + size <= self.limit

    def take(self, size: int) -> bool:
        if not self.fits(size):
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


class _BodyRefused(HTTPException):
    """Raised from ``receive`` to stop whoever reads the body; an HTTPException so that FastAPI's
    body parsing lets it through instead of turning it into a 400."""

    def __init__(self, status: int) -> None:
        super().__init__(status, "request body refused")


class BodyLimitMiddleware:
    """413 ``payload_too_large`` as soon as a request body passes its route's limit: from
    Content-Length when it is declared, else by counting the bytes as they arrive (chunked).
    429 ``overloaded`` (``Retry-After``) when a body's bytes would take this process's requests
    past ``in_flight`` bytes held at once: before it is read when its Content-Length does not
    fit, else as its bytes arrive. Bytes count as they arrive (a slow sender holds only what it
    sent) and until the request is answered. After a 429 uvicorn reads the rest of the body and
    drops it, so the connection carries the client's next request. The budget is never below
    the largest route limit, so a body that its route accepts always fits while nothing else is
    held."""

    def __init__(
        self, app: ASGIApp, *, default: int, per_route: dict[str, int], in_flight: int
    ) -> None:
        self.app = app
        self.default = default
        self.per_route = per_route
        self.budget = BodyBudget(max(in_flight, default, *per_route.values()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_route.get(str(scope.get("path", "")).rstrip("/"), self.default)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            if not self.budget.fits(int(declared)):
                await _overloaded(self.budget.limit)(scope, receive, send)
                return
        received = 0
        refusal: Any = None  # the answer once the body was cut off
        started = False

        async def counting_receive() -> Message:
            nonlocal received, refusal
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                if received + size > limit:
                    refusal = _too_large(limit)
                    raise _BodyRefused(413)
                if not self.budget.take(size):
                    refusal = _overloaded(self.budget.limit)
                    raise _BodyRefused(429)
                received += size
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:  # whatever the app answers once the body was cut off
                if not started:
                    started = True
                    await refusal(scope, receive, send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            with contextlib.suppress(_BodyRefused):
                await self.app(scope, counting_receive, guarded_send)
            if refusal is not None and not started:
                await refusal(scope, receive, send)
        finally:
            self.budget.give_back(received)


def _too_large(limit: int) -> Any:
    response = envelope(
        413,
        "payload_too_large",
        f"request body is larger than the limit of {limit} bytes",
        {"limit_bytes": limit},
    )
    # The rest of the body is not read: the connection cannot carry another request.
    response.headers["Connection"] = "close"
    return response


def _overloaded(budget: int) -> Any:
    return envelope(
        429,
        "overloaded",
        "the service holds too many request bodies at once; retry shortly",
        {"in_flight_limit_bytes": budget},
    )
