"""How both clients send a request: the httpx client they own (or are given) and the retry loop.

429 and 503 are retried (``retries`` times) after the service's ``Retry-After`` (at most 30 s
each); a request that got no answer is sent again only when that is safe (reads, deletes,
idempotent enrollment); every attempt carries the same ``Idempotency-Key``, so a retried
enrollment never enrolls twice.

Apart from the clients (:mod:`.sync`, :mod:`.async_client`), which only list the endpoints: this
is the one place that knows how a :class:`~facerec.client._core.Call` goes over the wire. The
blocking and the asyncio sender stand side by side so that they stay the same.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Self, TypeVar

import httpx
from pydantic import BaseModel

from facerec.client._core import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    Call,
    auth_headers,
    retry_wait,
    should_retry,
)

M = TypeVar("M", bound=BaseModel)


class Sender:
    """The blocking half: what :class:`~facerec.client.FaceRecClient` sends its calls through."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        """``http``: an httpx client to send through instead (a test app's, a tuned pool); the
        key is added to its headers and ``base_url``/``timeout``/``transport`` are not used."""
        self.retries = retries
        if http is not None:
            http.headers.update(auth_headers(api_key))
            self._http = http
            return
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers=auth_headers(api_key), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call[M]) -> M:
        headers = call.headers()  # one Idempotency-Key for every attempt
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    data=call.data,
                    files=call.files,
                    params=call.params,
                    headers=headers,
                )
            except httpx.TransportError:
                if attempt >= self.retries or not call.retry_on_transport_error():
                    raise
                time.sleep(retry_wait(None, attempt))
                attempt += 1
                continue
            if attempt < self.retries and should_retry(call, response):
                time.sleep(retry_wait(response, attempt))
                attempt += 1
                continue
            return call.parse(response)


class AsyncSender:
    """The asyncio half: what :class:`~facerec.client.AsyncFaceRecClient` sends its calls
    through; the same as :class:`Sender`, awaited."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``http``: an httpx client to send through instead (a test app's, a tuned pool); the
        key is added to its headers and ``base_url``/``timeout``/``transport`` are not used."""
        self.retries = retries
        if http is not None:
            http.headers.update(auth_headers(api_key))
            self._http = http
            return
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=auth_headers(api_key), transport=transport
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, call: Call[M]) -> M:
        headers = call.headers()  # one Idempotency-Key for every attempt
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    data=call.data,
                    files=call.files,
                    params=call.params,
                    headers=headers,
                )
            except httpx.TransportError:
                if attempt >= self.retries or not call.retry_on_transport_error():
                    raise
                await asyncio.sleep(retry_wait(None, attempt))
                attempt += 1
                continue
            if attempt < self.retries and should_retry(call, response):
                await asyncio.sleep(retry_wait(response, attempt))
                attempt += 1
                continue
            return call.parse(response)
