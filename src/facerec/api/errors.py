"""The one mapping from errors to HTTP responses, and the one JSON error envelope.

``{"success": false, "error": {"code": ..., "message": ..., "details": {...}}}``
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from facerec import errors
from facerec.storage.engine import is_connection_error

logger = logging.getLogger(__name__)

# Most specific first: the first class the error is an instance of decides the status.
STATUS: tuple[tuple[type[errors.FaceRecError], int], ...] = (
    (errors.UnsupportedFormatError, 415),
    (errors.PayloadTooLargeError, 413),
    (errors.FaceRejectedError, 422),
    (errors.InvalidValueError, 422),
    (errors.InvalidInputError, 400),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.ModelNotAvailableError, 400),
    (errors.OverloadedError, 429),
    (errors.ServiceUnavailableError, 503),
    (errors.UnauthorizedError, 401),
    (errors.ForbiddenError, 403),
)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "overloaded",
}

# Seconds a client should wait before retrying, by code (other 429/503 answers: 1 s).
RETRY_AFTER = {"storage_unavailable": 2}


def status_for(error: errors.FaceRecError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def envelope(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    body = {"success": False, "error": {"code": code, "message": message, "details": details or {}}}
    retry = RETRY_AFTER.get(code, 1)
    headers = {"Retry-After": str(retry)} if status in (429, 503) else {}
    if status >= 500:
        # After a fault the connection's state is unknown: close it, so the client's next request
        # goes on a fresh connection instead of being reset.
        headers["Connection"] = "close"
    return JSONResponse(status_code=status, content=jsonable_encoder(body), headers=headers)


def storage_unavailable(exc: BaseException) -> JSONResponse:
    """503 for a database that cannot be reached, whichever layer the driver error escaped from:
    a client that retries later loses nothing (never a 500 for an outage)."""
    logger.warning("storage unavailable: %s: %s", type(exc).__name__, exc)
    return envelope(
        503,
        "storage_unavailable",
        "the database is unavailable; retry shortly",
        {"reason": type(exc).__name__},
    )


async def facerec_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, errors.FaceRecError):
        return await unhandled_error_handler(request, exc)
    if isinstance(exc, errors.StorageUnavailableError):
        cause = exc.__cause__ or exc
        logger.warning("storage unavailable: %s: %s", type(cause).__name__, cause)
    status = status_for(exc)
    if status == 500:
        logger.error(
            "%s %s failed: %s (%s)", request.method, request.url.path, exc.message, exc.code
        )
    return envelope(status, exc.code, exc.message, exc.details)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    problems = exc.errors() if isinstance(exc, RequestValidationError) else []
    if any(p.get("type") == "json_invalid" for p in problems):
        return envelope(400, "invalid_json", "the request body is not valid JSON")
    fields = [
        {
            "field": ".".join(str(part) for part in p.get("loc", ()) if part != "body"),
            "problem": p.get("msg", ""),
            "type": p.get("type", ""),
        }
        for p in problems
    ]
    missing_body = any(
        p.get("type") == "missing" and tuple(p.get("loc", ())) == ("body",) for p in problems
    )
    if missing_body:
        return envelope(400, "empty_body", "the request has no body", {"fields": fields})
    return envelope(422, "validation_error", "some request fields are invalid", {"fields": fields})


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
    detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
    return envelope(status, HTTP_CODES.get(status, f"http_{status}"), str(detail))


async def driver_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Database driver and socket errors: 503 when they mean an outage, else a 500."""
    if is_connection_error(exc):
        return storage_unavailable(exc)
    return await unhandled_error_handler(request, exc)


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_connection_error(exc):  # e.g. wrapped by a library into an error type of its own
        return storage_unavailable(exc)
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope(500, "internal_error", "internal error; see the service log")


def _driver_error_types() -> tuple[type[Exception], ...]:
    kinds: list[type[Exception]] = [SQLAlchemyError, OSError]
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return tuple(kinds)
    kinds += [asyncpg.exceptions.PostgresError, asyncpg.exceptions.InterfaceError]
    return tuple(kinds)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.FaceRecError, facerec_error_handler)
    # Raised by storage code that does not translate them itself (index sync, pgvector search):
    # handled here, before the catch-all, so an outage is a 503 and is not logged as a crash.
    for kind in _driver_error_types():
        app.add_exception_handler(kind, driver_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
