"""Signed HTTP webhooks: one sink per URL, each POST signed with HMAC-SHA256.

Every POST carries the event as JSON (``Event.as_dict()``) and the headers

* ``X-Facerec-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``
* ``X-Facerec-Event: <event type>``
* ``X-Facerec-Timestamp: <unix seconds of this attempt>`` (the signed time is the body's ``at``)
* ``X-Facerec-Delivery: <uuid>``, the same on every retry of one delivery (for deduplication).

A 2xx answer is delivered. Connection errors, timeouts, 408, 429 and 5xx are retried with
exponential backoff (``backoff_s`` doubling up to ``backoff_max_s``, ±10% jitter) up to
``max_attempts`` attempts in all; any other answer, or the last attempt failing, makes a dead
letter: counted, and the last ``dead_letters_kept`` kept in memory for an admin to look at.
Deliveries run in the bus's worker for this URL, ``concurrency`` at a time, never in a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from facerec.events.bus import Event

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Facerec-Signature"
EVENT_HEADER = "X-Facerec-Event"
TIMESTAMP_HEADER = "X-Facerec-Timestamp"
DELIVERY_HEADER = "X-Facerec-Delivery"
RETRYABLE_STATUS = frozenset({408, 429})


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Facerec-Signature`` value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does: constant-time comparison of the signature it got."""
    return hmac.compare_digest(sign(secret, body), signature)


def sink_name(url: str) -> str:
    """A metrics label for a URL: host and path, never credentials or a query string."""
    parts = urlsplit(url)
    return f"webhook:{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"


@dataclass(frozen=True)
class DeadLetter:
    sink: str
    delivery: str
    event: dict[str, Any]
    attempts: int
    error: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class WebhookFailedError(RuntimeError):
    """The receiver did not take the event (it is now a dead letter)."""


class _RetryableError(Exception):
    pass


class WebhookSink:
    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        name: str | None = None,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 60.0,
        concurrency: int = 4,
        dead_letters: deque[DeadLetter] | None = None,
        on_dead_letter: Callable[[str], None] | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        if not secret:
            raise ValueError("webhook secret must not be empty")
        self.url = url
        self.name = name or sink_name(url)
        self.concurrency = concurrency
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.attempts = 0  # every POST tried, retries included
        # Shared by the sinks of one bus when given, so an admin reads one list.
        self.dead_letters: deque[DeadLetter] = (
            dead_letters if dead_letters is not None else deque(maxlen=100)
        )
        self._secret = secret
        self._timeout_s = timeout_s
        self._on_dead_letter = on_dead_letter
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        if self._client is None:
            self._open()

    def _open(self) -> httpx.AsyncClient:
        self._client = httpx.AsyncClient(
            timeout=self._timeout_s,
            follow_redirects=False,
            headers={"User-Agent": "facerec-webhooks"},
        )
        return self._client

    async def deliver(self, event: Event) -> None:
        client = self._client or self._open()
        body = json.dumps(event.as_dict(), separators=(",", ":"), ensure_ascii=False).encode()
        delivery = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            EVENT_HEADER: event.type,
            DELIVERY_HEADER: delivery,
        }
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._post(client, body, {**headers, TIMESTAMP_HEADER: str(int(time.time()))})
                return
            except _RetryableError as exc:
                error = str(exc)
            except WebhookFailedError as exc:
                self._dead_letter(delivery, event, attempt, str(exc))
                raise
            if attempt < self.max_attempts:
                await asyncio.sleep(self._backoff(attempt))
        self._dead_letter(delivery, event, self.max_attempts, error)
        raise WebhookFailedError(
            f"{self.name}: gave up after {self.max_attempts} attempts: {error}"
        )

    async def _post(self, client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> None:
        self.attempts += 1
        try:
            response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connection refused, timeout, protocol error
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRYABLE_STATUS:
            raise _RetryableError(f"HTTP {status}")
        raise WebhookFailedError(f"{self.name}: HTTP {status} (not retried)")

    def _backoff(self, attempt: int) -> float:
        pause = min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s)
        return float(pause * random.uniform(0.9, 1.1))

    def _dead_letter(self, delivery: str, event: Event, attempts: int, error: str) -> None:
        log.warning(
            "webhook %s: event %s dead after %d attempts: %s",
            self.name,
            event.type,
            attempts,
            error,
        )
        self.dead_letters.append(DeadLetter(self.name, delivery, event.as_dict(), attempts, error))
        if self._on_dead_letter is not None:
            self._on_dead_letter(self.name)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
