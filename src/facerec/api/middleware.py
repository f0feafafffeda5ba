"""Pure ASGI middleware: request metrics and cross-origin rules here, the request body limits in
:mod:`facerec.api.body_limit`.

Order, outermost first (:func:`install_middleware`): metrics (so refusals are counted too), then
cross-origin (a refused cross-site request costs nothing), then the body limits. Every refusal is
the project's JSON error envelope.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facerec.api.body_limit import BodyLimitMiddleware, body_limits
from facerec.api.errors import envelope
from facerec.config import Settings

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNMATCHED = "unmatched"


def _origin_of(value: str) -> str:
    parts = urlsplit(value.strip())
    if not parts.scheme or not parts.netloc:
        return value.strip().lower()
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class CrossOriginMiddleware:
    """CORS with an allow-list, and no state change from a page of another site.

    A request whose ``Origin`` is in ``allowed`` gets the CORS headers (and its preflight an
    answer). A POST/PUT/PATCH/DELETE from a browser page of another origin (``Origin`` not
    allowed and not this host, or ``Sec-Fetch-Site: cross-site``) is 403
    ``cross_origin_forbidden``, so a plain cross-site form post cannot enroll or erase anyone.
    Requests without ``Origin`` (curl, SDKs, servers) are unaffected.
    """

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(_origin_of(o) for o in allowed)
        self.any_origin = "*" in self.allowed

    def _allowed(self, origin: str) -> bool:
        return self.any_origin or _origin_of(origin) in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        method = str(scope.get("method", "GET")).upper()
        fetch_site = headers.get("sec-fetch-site", "").lower()
        allowed = origin is not None and self._allowed(origin)
        same_origin = origin is not None and _same_origin(origin, headers)
        cross_site = (origin is not None and not same_origin) or fetch_site == "cross-site"
        if method == "OPTIONS" and origin and "access-control-request-method" in headers:
            await self._preflight(scope, receive, send, origin, headers, allowed or same_origin)
            return
        if method in UNSAFE_METHODS and cross_site and not allowed:
            await _forbidden(origin)(scope, receive, send)
            return
        if not allowed or origin is None:
            await self.app(scope, receive, send)
            return
        cors_origin: str = origin

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = cors_origin
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        origin: str,
        headers: Headers,
        allowed: bool,
    ) -> None:
        if not allowed:
            await _forbidden(origin)(scope, receive, send)
            return
        cors = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ", ".join(sorted(KNOWN_METHODS)),
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
        requested = headers.get("access-control-request-headers")
        if requested:
            cors["Access-Control-Allow-Headers"] = requested
        response = Response(status_code=204, headers=cors)
        await response(scope, receive, send)


def _same_origin(origin: str, headers: Headers) -> bool:
    """Browsers send ``Origin`` on same-origin POSTs too (the /docs page): compare it with the
    host the request was sent to."""
    host = headers.get("host", "").lower()
    return bool(host) and urlsplit(origin.strip()).netloc.lower() == host


def _forbidden(origin: str | None) -> Any:
    return envelope(
        403,
        "cross_origin_forbidden",
        "cross-site requests may not change state; allow the origin in server.cors_origins",
        {"origin": origin},
    )


def route_label(scope: Scope) -> str:
    """The route template a request matched (``/api/.../persons/{person_id}``), never the
    concrete path, so a client cannot grow the label set; read after the app ran (the router
    leaves the route it chose in the scope, also for a wrong method). Anything else (404s,
    scanners) is ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class MetricsMiddleware:
    """Counts every HTTP request by route template, normalised method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "facerec", None)
        if state is None:
            return
        method = str(scope.get("method", "")).upper()
        method = method if method in KNOWN_METHODS else "other"
        route = route_label(scope)
        state.metrics.requests.labels(route, method, str(status)).inc()
        state.metrics.request_seconds.labels(route, method).observe(seconds)
        if status == 429:
            state.metrics.overloaded.inc()


def install_middleware(app: Any, settings: Settings) -> None:
    """Body limit innermost, then cross-origin, then metrics outermost."""
    default, per_route = body_limits(settings)
    app.add_middleware(
        BodyLimitMiddleware,
        default=default,
        per_route=per_route,
        in_flight=settings.limits.max_body_bytes_in_flight,
    )
    app.add_middleware(CrossOriginMiddleware, allowed=settings.server.cors_origins)
    app.add_middleware(MetricsMiddleware)
