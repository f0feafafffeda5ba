"""The FastAPI side of access control.

:data:`ROUTE_SCOPES` is the one place that says which scope each route needs. Two pieces apply
it:

* :class:`AccessMiddleware` (pure ASGI, before any body is read): authenticates every request
  except ``/health`` and ``/ready`` — API routes, ``/docs``, ``/openapi.json``, ``/metrics`` and
  unknown paths alike, so a 404 tells nothing to a client without a key — then applies the key's
  rate limit (429 ``rate_limited``) and refuses inference routes at once while the inference
  queue is full (429 ``overloaded``). The principal goes on ``request.state.principal``.
* :func:`authorize`, the dependency passed to ``include_router``: checks the route's scope
  (403 ``insufficient_scope``). Routes read the principal through :data:`PrincipalDep`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from facerec.api.errors import envelope, status_for
from facerec.auth.access import auth_required, warn_if_open
from facerec.auth.principal import (
    ADMIN,
    ANONYMOUS,
    DETECT,
    ENROLL,
    MANAGE,
    RECOGNIZE,
    Principal,
)
from facerec.config import Settings
from facerec.console import CONSOLE_PATHS
from facerec.errors import FaceRecError, ForbiddenError, ServiceUnavailableError, UnauthorizedError
from facerec.state import AppState

OPEN = ""  # no key needed
FACES = "/api/face-recognition"
PHOTOS = "/api/photos"
SUGGESTIONS = "/api/photo-suggestions"

# (method, route template) -> the scope a key needs. A route missing here needs ``admin``.
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/health"): OPEN,
    ("GET", "/ready"): OPEN,
    ("GET", "/metrics"): ADMIN,  # or FACEREC_AUTH__METRICS_TOKEN
    ("GET", "/api/models"): DETECT,
    ("POST", "/api/face-detection/detect"): DETECT,
    ("POST", "/api/face-detection/detect-upload"): DETECT,
    ("POST", "/api/face-antispoofing/detect"): DETECT,
    ("POST", "/api/face-antispoofing/detect-upload"): DETECT,
    ("POST", f"{FACES}/recognize"): RECOGNIZE,
    ("POST", f"{FACES}/recognize-upload"): RECOGNIZE,
    ("POST", f"{FACES}/recognize-all"): RECOGNIZE,
    ("POST", f"{FACES}/recognize-all-upload"): RECOGNIZE,
    ("POST", f"{FACES}/compare"): RECOGNIZE,
    ("POST", f"{FACES}/compare-upload"): RECOGNIZE,
    ("POST", f"{FACES}/add-face"): ENROLL,
    ("POST", f"{FACES}/add-face-upload"): ENROLL,
    ("POST", f"{FACES}/register-multiple"): ENROLL,
    ("POST", f"{FACES}/enroll-batch"): ENROLL,
    ("POST", f"{FACES}/enroll-batch-upload"): ENROLL,
    ("GET", f"{FACES}/persons"): MANAGE,
    ("GET", f"{FACES}/persons/{{person_id}}"): MANAGE,
    ("PATCH", f"{FACES}/persons/{{person_id}}"): MANAGE,
    ("DELETE", f"{FACES}/persons/{{person_id}}"): MANAGE,
    ("DELETE", f"{FACES}/persons/{{person_id}}/faces/{{face_id}}"): MANAGE,
    ("GET", f"{FACES}/collections"): MANAGE,
    ("POST", f"{FACES}/collections"): MANAGE,
    ("DELETE", f"{FACES}/collections/{{name}}"): MANAGE,
    # Stored photos: tagging and corrections write biometric data (enroll); reading and erasing
    # them is managing the gallery.
    ("POST", PHOTOS): ENROLL,
    ("POST", f"{PHOTOS}/upload"): ENROLL,
    ("GET", f"{PHOTOS}/{{photo_id}}"): MANAGE,
    ("DELETE", f"{PHOTOS}/{{photo_id}}"): MANAGE,
    ("POST", f"{PHOTOS}/{{photo_id}}/retag"): ENROLL,
    ("POST", f"{PHOTOS}/{{photo_id}}/faces/{{index}}/confirm"): ENROLL,
    ("POST", f"{PHOTOS}/{{photo_id}}/faces/{{index}}/assign"): ENROLL,
    ("POST", f"{PHOTOS}/{{photo_id}}/faces/{{index}}/reject"): ENROLL,
    ("GET", f"{FACES}/persons/{{person_id}}/photos"): MANAGE,
    ("GET", SUGGESTIONS): MANAGE,
    ("POST", f"{SUGGESTIONS}/{{suggestion_id}}/accept"): ENROLL,
    ("POST", f"{SUGGESTIONS}/{{suggestion_id}}/dismiss"): ENROLL,
    ("POST", "/api/admin/keys"): ADMIN,
    ("GET", "/api/admin/keys"): ADMIN,
    ("DELETE", "/api/admin/keys/{key_id}"): ADMIN,
    ("GET", "/api/admin/audit"): ADMIN,
    ("POST", "/api/admin/migrations"): ADMIN,
    ("GET", "/api/admin/migrations"): ADMIN,
    ("GET", "/api/admin/migrations/{migration_id}"): ADMIN,
    ("POST", "/api/admin/migrations/{migration_id}/cut-over"): ADMIN,
    ("POST", "/api/admin/migrations/{migration_id}/rollback"): ADMIN,
    ("POST", "/api/admin/migrations/{migration_id}/finish"): ADMIN,
    # Live video: the WebSocket handshake (a GET); a plain GET answers 426.
    ("GET", "/ws/recognize"): RECOGNIZE,
    # The web console's static files: no data in them; the page sends the user's key itself.
    **{("GET", path): OPEN for path in CONSOLE_PATHS},
}
OPEN_PATHS = frozenset(path for (_, path), scope in ROUTE_SCOPES.items() if scope == OPEN)
# Routes that run inference (no path parameters): refused before their body is read while the
# inference queue is full.
INFERENCE_PATHS = frozenset(
    path for (_, path), scope in ROUTE_SCOPES.items() if scope in (DETECT, RECOGNIZE, ENROLL)
) - {"/api/models"}


def scope_for(method: str, template: str) -> str:
    method = "GET" if method == "HEAD" else method
    return ROUTE_SCOPES.get((method, template), ADMIN)


def _state(scope: Scope) -> AppState | None:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "facerec", None)


async def authenticate(state: AppState | None, headers: Headers, path: str) -> Principal:
    """The principal of a request (raises the typed error that says why there is none)."""
    if state is None:
        raise ServiceUnavailableError("the service is not initialised yet", code="not_ready")
    if not auth_required(state.settings):
        return ANONYMOUS
    if state.auth is None:
        raise ServiceUnavailableError(
            "the service is not initialised yet", code="not_ready", reason="starting"
        )
    return await state.auth.authenticate(headers, path)


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] not in ("http", "websocket") or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        state = _state(scope)
        try:
            principal = await authenticate(state, Headers(scope=scope), path)
        except FaceRecError as exc:
            if scope["type"] == "websocket":  # refused before the handshake: HTTP 403
                await send({"type": "websocket.close", "code": 1008, "reason": exc.code})
            else:
                await _refusal(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        if state is not None and state.auth is not None and principal is not ANONYMOUS:
            wait = await state.auth.wait_s(principal)
            if wait > 0:
                await _rate_limited(wait)(scope, receive, send)
                return
        if state is not None and path.rstrip("/") in INFERENCE_PATHS and state.executor.full:
            refusal = envelope(
                429, "overloaded", "the service is busy; retry shortly", {"queue": "full"}
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _refusal(exc: FaceRecError) -> Any:
    response = envelope(status_for(exc), exc.code, exc.message, exc.details)
    if isinstance(exc, UnauthorizedError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="facerec"'
    return response


def _rate_limited(wait_s: float) -> Any:
    retry_after = max(1, math.ceil(wait_s))
    response = envelope(
        429,
        "rate_limited",
        "too many requests for this API key; retry after Retry-After seconds",
        {"retry_after_s": round(wait_s, 3)},
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


# Declared so that the OpenAPI document (and the /docs "Authorize" button) shows both ways to
# send a key; the middleware has already read them.
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer fk_…`")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: fk_…`")


async def authorize(
    request: Request,
    _bearer_key: Annotated[Any, Security(_bearer)] = None,
    _header_key: Annotated[Any, Security(_api_key)] = None,
) -> None:
    """Router dependency: the route's scope from :data:`ROUTE_SCOPES`, or 403."""
    route = request.scope.get("route")
    needed = scope_for(request.method, str(getattr(route, "path", "")))
    if needed == OPEN:
        return
    principal = await get_principal(request)
    if not principal.has_scope(needed):
        raise ForbiddenError(
            f"this API key lacks the '{needed}' scope",
            code="insufficient_scope",
            required=needed,
        )


async def get_principal(request: Request) -> Principal:
    """The request's principal (set by the middleware; authenticated here when it is absent)."""
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    state: AppState | None = getattr(request.app.state, "facerec", None)
    principal = await authenticate(state, request.headers, request.url.path)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
AUTHORIZE = Depends(authorize)


def require_collection(principal: Principal, collection: str) -> None:
    """403 ``collection_forbidden`` unless the key may use ``collection``."""
    if not principal.may_use_collection(collection):
        raise ForbiddenError(
            f"this API key may not use collection {collection!r}",
            code="collection_forbidden",
            collection=collection,
        )


def install_auth(app: Any, settings: Settings) -> None:
    """Add :class:`AccessMiddleware` (call before ``install_middleware``: it must sit inside
    the cross-origin middleware so refusals carry CORS headers)."""
    warn_if_open(settings)
    app.add_middleware(AccessMiddleware)
