"""``Idempotency-Key`` for the enrollment routes: a client that got a 5xx (or no answer) retries
with the same key and cannot enroll twice.

- The first successful response is stored with the key (for
  :data:`~facerec.storage.idempotency.DEFAULT_TTL`); a retry with the same key and the same request
  gets it again, byte for byte, with ``Idempotent-Replayed: true``.
- The same key with a different request (another body, image or route) is 409
  ``idempotency_key_reused``.
- A retry that arrives while the first request still runs waits for it (up to
  :data:`IN_PROGRESS_WAIT_S`, then 409 ``idempotency_key_in_progress``): concurrent duplicates run
  the enrollment once.
- A request that fails stores nothing, so its retry runs again.

Requests are compared by a SHA-256 of the route, the parsed request fields (canonical JSON: key
order, whitespace and multipart boundaries do not matter) and the uploaded files' bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Header, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from facerec.errors import ConflictError, InvalidInputError, ServiceUnavailableError
from facerec.inference.image_formats import plain_base64
from facerec.state import AppState
from facerec.storage.idempotency import Claim, ClaimState, SqlIdempotencyStore
from facerec.values import DEFAULT_TENANT, qualify

logger = logging.getLogger(__name__)

IN_PROGRESS_WAIT_S = 15.0
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")
_CHUNK = 1 << 20
# Longer strings (a photo's base64) are hashed as they are where JSON would not change them.
_LONG = 64 * 1024

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Optional, 1-255 printable ASCII characters (a UUID is a good choice). "
        "A retry with the same key and the same request returns the first successful response "
        "(header `Idempotent-Replayed: true`) instead of enrolling again; the same key with "
        "another request is 409 `idempotency_key_reused`. Keys are kept for 24 hours.",
    ),
]

Result = TypeVar("Result", bound=BaseModel)


async def idempotent(
    state: AppState,
    key: str | None,
    route: str,
    request: BaseModel,
    handler: Callable[[], Awaitable[Result]],
    *uploads: UploadFile,
    tenant: str = DEFAULT_TENANT,
) -> Result | Response:
    """Run ``handler`` once per ``key`` of ``tenant``; without a key, simply run it."""
    if key is None:
        return await handler()
    if not _KEY_RE.match(key):
        raise InvalidInputError(
            "Idempotency-Key must be 1-255 printable ASCII characters",
            code="invalid_idempotency_key",
        )
    if tenant != DEFAULT_TENANT:
        # Another tenant's identical key is another record: responses never cross tenants.
        key = "t:" + hashlib.sha256(f"{tenant}\0{key}".encode()).hexdigest()
    store = _store(state)
    request_hash = await fingerprint(route, request, *uploads)
    claim = await _claim(store, key, route, request_hash)
    if claim.state is ClaimState.REPLAY:
        return Response(
            content=claim.body,
            status_code=claim.status or 200,
            media_type="application/json",
            headers={REPLAYED_HEADER: "true"},
        )
    if claim.state is ClaimState.MISMATCH:
        raise ConflictError(
            "this Idempotency-Key was already used for a different request; use a new key",
            code="idempotency_key_reused",
        )
    if claim.state is ClaimState.IN_PROGRESS:
        raise ConflictError(
            "a request with this Idempotency-Key is still running; retry later",
            code="idempotency_key_in_progress",
        )
    try:
        result = await handler()
    except BaseException:
        await _release(store, key)
        raise
    response = JSONResponse(result.model_dump(mode="json", by_alias=True))
    person = getattr(result, "person", None)
    person_key = qualify(tenant, person.person_id) if person is not None else None
    try:
        await store.complete(key, response.status_code, bytes(response.body), person_key)
    except Exception as exc:  # the enrollment is committed: answer it, the key stays claimed
        logger.warning("could not store the response of Idempotency-Key %r: %s", key, exc)
    return response


async def fingerprint(route: str, request: BaseModel, *uploads: UploadFile) -> str:
    """The SHA-256 that tells one request from another, computed in a worker thread: a photo of
    a few MB made it tens of ms on the event loop (``request_digest``)."""
    return await run_in_threadpool(_fingerprint, route, request, uploads)


def _fingerprint(route: str, request: BaseModel, uploads: tuple[UploadFile, ...]) -> str:
    digest = request_digest(route, request)
    for upload in uploads:
        file_digest = hashlib.sha256()
        upload.file.seek(0)
        while chunk := upload.file.read(_CHUNK):
            file_digest.update(chunk)
        upload.file.seek(0)
        digest.update(file_digest.digest())
    return digest.hexdigest()


def request_digest(route: str, request: BaseModel) -> hashlib._Hash:
    """SHA-256 of ``route`` and the request's canonical JSON (sorted keys, no spaces, ASCII).

    The same digest as hashing ``json.dumps`` of the whole request, which a 14 MB photo's base64
    text made ~100 ms (escaping it character by character, then a copy). A long string of plain
    base64 (its JSON is itself in quotes, nothing to escape) is left out of the JSON as a token
    and hashed as it is where the token stands."""
    fields = request.model_dump(mode="json")
    mark = f"facerec-{uuid.uuid4().hex}-"  # no request can hold it by chance
    long: list[str] = []

    def swapped(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swapped(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swapped(v) for v in value]
        if isinstance(value, str) and len(value) > _LONG and plain_base64(value) is not None:
            long.append(value)
            return f"{mark}{len(long) - 1}"
        return value

    text = json.dumps(swapped(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(f"{route}\n".encode())
    for i, part in enumerate(re.split(f'"{mark}(\\d+)"', text)):
        if i % 2:
            digest.update(b'"')
            digest.update(long[int(part)].encode("ascii"))
            digest.update(b'"')
        else:
            digest.update(part.encode())
    digest.update(b"\n")
    return digest


def _store(state: AppState) -> SqlIdempotencyStore:
    if state.repository is None:  # pragma: no cover - routes run only once storage is open
        raise ServiceUnavailableError("storage is not open yet", code="not_ready")
    return state.repository.idempotency


async def _claim(store: SqlIdempotencyStore, key: str, route: str, request_hash: str) -> Claim:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IN_PROGRESS_WAIT_S
    pause = 0.05
    while True:
        claim = await store.claim(key, route, request_hash)
        if claim.state is not ClaimState.IN_PROGRESS or loop.time() + pause > deadline:
            return claim
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def _release(store: SqlIdempotencyStore, key: str) -> None:
    # Shielded: a cancelled request (client gone) still gives its key up.
    try:
        await asyncio.shield(store.release(key))
    except Exception as exc:  # the claim then lapses with its lease
        logger.warning("could not release Idempotency-Key %r: %s", key, exc)
