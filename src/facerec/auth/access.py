"""When authentication is on, and the services behind it (built once storage is open).

On whenever ``server.host`` is not loopback, or ``auth.required`` is set; off beyond loopback only
with ``auth.allow_unauthenticated``. Off, every request acts as :data:`ANONYMOUS` (tenant
``default``, every scope).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.auth.audit import AuditLog
from facerec.auth.keys import KeyHasher
from facerec.auth.principal import ADMIN, DEFAULT_TENANT, Principal
from facerec.auth.ratelimit import MemoryBuckets, RateLimiter, RedisBuckets, redis_client
from facerec.auth.service import KeyService, utcnow
from facerec.auth.store import SqlAuthStore
from facerec.config import Settings
from facerec.errors import UnauthorizedError

if TYPE_CHECKING:  # imported only where Redis is configured
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
METRICS_PATH = "/metrics"
# The metrics token reaches /metrics only (checked by path), nothing else.
METRICS_PRINCIPAL = Principal(
    tenant=DEFAULT_TENANT, key_id=None, scopes=frozenset({ADMIN}), collections=frozenset()
)


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK_HOSTS


def auth_required(settings: Settings) -> bool:
    if settings.auth.required:
        return True
    return not is_loopback(settings.server.host) and not settings.auth.allow_unauthenticated


def warn_if_open(settings: Settings) -> None:
    if not auth_required(settings) and not is_loopback(settings.server.host):
        logger.warning(
            "authentication is OFF while listening on %s (FACEREC_AUTH__ALLOW_UNAUTHENTICATED="
            "true): anyone who can reach the port acts as tenant 'default' with every scope",
            settings.server.host,
        )


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of ``Authorization: Bearer …`` or else ``X-API-Key: …``."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


@dataclass
class AuthServices:
    keys: KeyService
    audit: AuditLog
    limiter: RateLimiter | None
    metrics_token: str | None = None
    redis: Redis[bytes] | None = None

    async def authenticate(self, headers: Mapping[str, str], path: str) -> Principal:
        presented = presented_key(headers)
        if presented is None:
            raise UnauthorizedError(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key'",
                code="unauthorized",
            )
        if (
            path == METRICS_PATH
            and self.metrics_token
            and hmac.compare_digest(presented.encode(), self.metrics_token.encode())
        ):
            return METRICS_PRINCIPAL
        return await self.keys.verify(presented)

    async def wait_s(self, principal: Principal) -> float:
        """0 when the key may make a request now, else the seconds until it may."""
        if self.limiter is None or principal.key_id is None:
            return 0.0
        return await self.limiter.take(principal.key_id)

    async def close(self) -> None:
        if self.redis is not None:
            try:
                await self.redis.aclose()  # type: ignore[attr-defined]  # stubs predate it
            except Exception as exc:  # closing a dead connection
                logger.debug("closing the rate-limit redis client: %s", exc)


def open_auth(
    settings: Settings,
    engine: AsyncEngine,
    *,
    on_redis_error: Callable[[], None] | None = None,
) -> AuthServices:
    """Keys, audit log and rate limiter on ``engine`` (nothing is connected until used)."""
    auth = settings.auth
    store = SqlAuthStore(engine)
    pepper = auth.pepper.get_secret_value() if auth.pepper else None
    keys = KeyService(store, KeyHasher(pepper), cache_seconds=auth.cache_seconds)
    limiter = None
    redis = None
    if auth.rate_per_second > 0:
        memory = MemoryBuckets(auth.rate_per_second, auth.burst)
        buckets = None
        if settings.cache.redis_url:
            redis = redis_client(settings.cache.redis_url)
            buckets = RedisBuckets(auth.rate_per_second, auth.burst, redis)
        limiter = RateLimiter(memory, buckets, on_error=on_redis_error)
    return AuthServices(
        keys=keys,
        audit=AuditLog(store, utcnow),
        limiter=limiter,
        metrics_token=auth.metrics_token.get_secret_value() if auth.metrics_token else None,
        redis=redis,
    )
