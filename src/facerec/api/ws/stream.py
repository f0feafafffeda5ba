"""One ``/ws/recognize`` socket's two loops (:class:`RecognizeStream`), as
:mod:`facerec.api.ws.recognize` describes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from facerec.api.schemas.streams import FrameIn, StreamConfigIn
from facerec.api.uploads import OFFLOAD_CHARS
from facerec.api.ws import messages
from facerec.api.ws.protocol import (
    FRAME_FORMATS,
    GOING_AWAY,
    IDLE_TIMEOUT,
    UNSUPPORTED_DATA,
    CloseStreamError,
    Mailbox,
    Message,
    parse,
)
from facerec.api.ws.session import open_session
from facerec.domain.streams import StreamSession
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.errors import (
    FaceRecError,
    InvalidInputError,
    OverloadedError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnsupportedFormatError,
)
from facerec.inference.images import decode_base64, header_pixels, sniff_format
from facerec.state import AppState
from facerec.storage.engine import is_connection_error

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    number: int
    data: bytes


class RecognizeStream:
    def __init__(self, websocket: WebSocket, state: AppState, scope: TenantScope) -> None:
        self.ws = websocket
        self.state = state
        self.scope = scope
        self.limits = state.settings.streams
        self.mailbox: Mailbox[Frame] = Mailbox()
        self.frames = 0
        self.overloaded = 0
        self._send_lock = asyncio.Lock()

    @property
    def dropped(self) -> int:
        return self.mailbox.dropped + self.overloaded

    async def run(self) -> None:
        if not self.state.ready:
            raise CloseStreamError(4503, "not_ready", "the service is not initialised yet")
        session, fps = await self._configure(await self._receive())
        tasks = [
            asyncio.create_task(self._receive_loop(), name="ws-receive"),
            asyncio.create_task(self._process_loop(session, fps), name="ws-process"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises why the loop stopped
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            session.close()

    # --- configuration ------------------------------------------------------------------------

    async def _configure(self, message: Message) -> tuple[StreamSession, float]:
        if message.payload is None or message.kind != "config":
            raise CloseStreamError(
                UNSUPPORTED_DATA, "config_expected", "the first message must be a JSON config"
            )
        try:
            body = StreamConfigIn.model_validate(message.payload)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise CloseStreamError(
                4400, "invalid_config", "the config is invalid", {"errors": errors}
            ) from None
        try:
            session = await open_session(self.state, self.scope, body)
        except FaceRecError as exc:
            raise CloseStreamError.of(exc) from exc
        fps = min(body.max_fps or self.limits.max_fps, self.limits.max_fps)
        await self._send(messages.ready(session, body.collection, fps, self.limits))
        return session, fps

    # --- receiving ----------------------------------------------------------------------------

    async def _receive(self) -> Message:
        timeout = self.limits.idle_timeout_seconds
        try:
            raw = await asyncio.wait_for(self.ws.receive(), timeout)
        except TimeoutError:
            raise CloseStreamError(
                IDLE_TIMEOUT, "idle_timeout", f"no message for {timeout:g} s"
            ) from None
        return parse(raw, self.limits.max_message_bytes)

    async def _receive_loop(self) -> None:
        while True:
            message = await self._receive()
            kind = message.kind
            if kind == "frame":
                await self._accept_frame(message)
            elif kind == "ping":
                await self._send_json(messages.pong())
            elif kind == "config":
                await self._send(messages.config_already_set())
            else:
                raise CloseStreamError(
                    UNSUPPORTED_DATA, "unknown_message_type", f"unknown message type {kind!r}"
                )

    async def _accept_frame(self, message: Message) -> None:
        self.frames += 1
        number = self.frames
        try:
            data = message.data
            if data is None:
                data = await self._frame_bytes(message.payload or {})
            self._check_frame(data)
        except FaceRecError as exc:
            await self._frame_error(number, exc)
            return
        self.mailbox.put(Frame(number, data))

    async def _frame_bytes(self, payload: dict[str, Any]) -> bytes:
        try:
            text = FrameIn.model_validate(payload).image_base64
        except ValidationError as exc:
            raise InvalidInputError(
                'a JSON frame is {"image_base64": "..."}', code="invalid_frame"
            ) from exc
        limits = self.state.settings.limits
        if len(text) > OFFLOAD_CHARS:
            return await run_in_threadpool(decode_base64, text, limits)
        return decode_base64(text, limits)

    def _check_frame(self, data: bytes) -> None:
        kind = sniff_format(data)
        if kind not in FRAME_FORMATS:
            raise UnsupportedFormatError(
                "a frame must be a JPEG or PNG image", code="unsupported_format", format=kind
            )
        pixels = header_pixels(data)
        if pixels > self.limits.max_frame_pixels:
            raise PayloadTooLargeError(
                f"a frame of {pixels} pixels is larger than the limit of "
                f"{self.limits.max_frame_pixels}",
                code="frame_too_large",
                pixels=pixels,
                limit_pixels=self.limits.max_frame_pixels,
            )

    # --- processing ---------------------------------------------------------------------------

    async def _process_loop(self, session: StreamSession, fps: float) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / fps
        next_start = 0.0
        while True:
            await self.mailbox.wait()
            delay = next_start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # newer frames may replace the waiting one meanwhile
            frame = self.mailbox.take()
            if frame is None:
                continue
            next_start = loop.time() + interval
            if not self.state.ready:
                raise CloseStreamError(GOING_AWAY, "shutting_down", "the service is shutting down")
            try:
                result = await session.process(frame.data, StageTimer(self.state.metrics.stage))
            except OverloadedError:
                self.overloaded += 1  # the shared executor is full: dropped, never queued
                continue
            except FaceRecError as exc:
                await self._frame_error(frame.number, exc)
                continue
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                error = ServiceUnavailableError(
                    "the database cannot be reached right now", code="storage_unavailable"
                )
                await self._frame_error(frame.number, error)
                continue
            await self._send(messages.frame_result(frame.number, result, self.dropped, self.scope))

    # --- sending ------------------------------------------------------------------------------

    async def _frame_error(self, number: int, exc: FaceRecError) -> None:
        await self._send(messages.frame_error(number, exc))

    async def _send(self, message: BaseModel) -> None:
        async with self._send_lock:
            await self.ws.send_text(message.model_dump_json())

    async def _send_json(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(message)

    async def close(self, closed: CloseStreamError) -> None:
        """An ``error`` message saying why, then the close frame (the client may be gone)."""
        error = messages.closing_error(closed)
        with contextlib.suppress(Exception):
            await self._send(error)
        with contextlib.suppress(Exception):
            await self.ws.close(closed.close_code, closed.code)
