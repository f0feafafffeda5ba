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
from starlette.exceptions import HTTPException as StarletteHTTPException

from facerec import errors

logger = logging.getLogger(__name__)

# Most specific first: the first class the error is an instance of decides the status.
STATUS: tuple[tuple[type[errors.FaceRecError], int], ...] = (
    (errors.UnsupportedFormatError, 415),
    (errors.PayloadTooLargeError, 413),
    (errors.FaceRejectedError, 422),
    (errors.InvalidInputError, 400),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.ModelNotAvailableError, 400),
    (errors.OverloadedError, 429),
    (errors.ServiceUnavailableError, 503),
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


def status_for(error: errors.FaceRecError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def envelope(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    body = {"success": False, "error": {"code": code, "message": message, "details": details or {}}}
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return JSONResponse(status_code=status, content=jsonable_encoder(body), headers=headers)


async def facerec_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, errors.FaceRecError):
        return await unhandled_error_handler(request, exc)
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


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return envelope(500, "internal_error", "internal error; see the service log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.FaceRecError, facerec_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
