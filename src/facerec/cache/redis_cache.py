"""Redis cache (redis.asyncio) that degrades to a miss when Redis is down.

Failure handling: short socket timeouts and no client retries, so one failed call costs at most
about ``socket_timeout``; after a failure a circuit breaker answers every call locally (a miss,
a dropped write) for ``retry_after`` seconds, then lets one call try Redis again. Each failure
increments ``errors`` and calls ``on_error(operation)`` (wire it to facerec_cache_errors_total).
Purges that could not reach Redis are remembered (bounded) and replayed once it answers again,
so an erasure during an outage still reaches the cache afterwards; with ``pending_file`` they are
also written to disk (owner-only, atomically) and replayed after a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, MutableSet
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

_SET_WITH_TAGS = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[2]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
  end
end
return 1
"""
_PURGE_TAGS = """
local n = 0
for i = 1, #KEYS do
  for _, key in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    n = n + redis.call('UNLINK', key)
  end
  redis.call('UNLINK', KEYS[i])
end
return n
"""
_MAX_PENDING = 10_000


class RedisCache:
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "facerec:",
        default_ttl: float = 3600.0,
        socket_timeout: float = 0.25,
        retry_after: float = 5.0,
        on_error: Callable[[str], None] | None = None,
        client: Redis[bytes] | None = None,
        pending_file: Path | None = None,
    ) -> None:
        self.prefix = prefix
        self.default_ttl = default_ttl
        self.retry_after = retry_after
        self.on_error = on_error
        self.errors = 0
        self.short_circuited = 0  # calls answered locally while the breaker was open
        self._timeout = socket_timeout
        self._client = client or Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self._set_script = self._client.register_script(_SET_WITH_TAGS)
        self._purge_script = self._client.register_script(_PURGE_TAGS)
        self._open_until = 0.0
        self._pending_tags: MutableSet[str] = set()
        self._pending_keys: MutableSet[str] = set()
        self._pending_file = pending_file
        self._load_pending()

    @property
    def available(self) -> bool:
        """False while the breaker is open (Redis failed less than ``retry_after`` ago)."""
        return time.monotonic() >= self._open_until

    async def get(self, key: str) -> bytes | None:
        result = await self._call("get", lambda: self._client.get(self.prefix + key), None)
        return bytes(result) if result is not None else None

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, tags: Iterable[str] = ()
    ) -> None:
        keys = [self.prefix + key, *(self._tag_key(t) for t in tags)]
        ttl_ms = max(1, int((ttl or self.default_ttl) * 1000))
        await self._call("set", lambda: self._set_script(keys=keys, args=[value, ttl_ms]), None)

    async def delete(self, *keys: str) -> None:
        if not keys:
            return
        full = [self.prefix + k for k in keys]
        if await self._call("delete", lambda: self._client.unlink(*full), None) is None:
            self._remember(self._pending_keys, full)

    async def delete_prefix(self, prefix: str) -> int:
        async def scan_and_unlink() -> int:
            removed = 0
            batch: list[Any] = []
            async for key in self._client.scan_iter(match=_glob(self.prefix + prefix) + "*"):
                batch.append(key)
                if len(batch) >= 500:
                    removed += int(await self._client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(await self._client.unlink(*batch))
            return removed

        # A long scan is not an outage: each round trip is still bounded by the socket timeout.
        return await self._call("delete_prefix", scan_and_unlink, 0, limit_s=60.0)

    async def purge_tags(self, *tags: str) -> int:
        if not tags:
            return 0
        tag_keys = [self._tag_key(t) for t in tags]
        result = await self._call("purge", lambda: self._purge_script(keys=tag_keys), None)
        if result is None:
            self._remember(self._pending_tags, tag_keys)
            return 0
        return int(result)

    async def ping(self) -> bool:
        return bool(await self._call("ping", self._client.ping, False))

    async def close(self) -> None:
        try:
            await self._client.aclose()  # type: ignore[attr-defined]  # stubs predate it
        except (RedisError, OSError) as exc:  # closing a dead connection
            log.debug("closing redis client: %s", exc)

    # ---- internals ---------------------------------------------------------------------------

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    def _remember(self, pending: MutableSet[str], items: list[str]) -> None:
        if len(pending) + len(items) <= _MAX_PENDING:
            pending |= set(items)
            self._save_pending()
        else:
            log.error(
                "cache purge backlog full: %d purges dropped (entries expire by TTL)", len(items)
            )

    def _load_pending(self) -> None:
        if self._pending_file is None or not self._pending_file.is_file():
            return
        try:
            saved = json.loads(self._pending_file.read_text(encoding="utf-8"))
            self._pending_tags |= {str(t) for t in saved.get("tags", [])}
            self._pending_keys |= {str(k) for k in saved.get("keys", [])}
        except (OSError, ValueError, AttributeError) as exc:
            log.error("cannot read pending cache purges from %s: %s", self._pending_file, exc)
            return
        if self._pending_tags or self._pending_keys:
            log.info(
                "%d cache purges pending from before the restart",
                len(self._pending_tags) + len(self._pending_keys),
            )

    def _save_pending(self) -> None:
        """Write the pending purges to disk (or remove the file when none are left)."""
        path = self._pending_file
        if path is None:
            return
        try:
            if not self._pending_tags and not self._pending_keys:
                path.unlink(missing_ok=True)
                return
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            body = json.dumps(
                {"tags": sorted(self._pending_tags), "keys": sorted(self._pending_keys)}
            )
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".purges-")  # mode 0600
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
            os.replace(tmp, path)
        except OSError as exc:
            log.error("cannot persist pending cache purges to %s: %s", path, exc)

    async def _call(
        self,
        operation: str,
        command: Callable[[], Awaitable[T]],
        default: T,
        *,
        limit_s: float | None = None,
    ) -> T:
        if not self.available:
            self.short_circuited += 1
            return default
        try:
            if self._pending_tags or self._pending_keys:
                await self._replay_purges()
            # The socket timeouts bound each round trip; this bounds the whole call.
            return await asyncio.wait_for(command(), timeout=limit_s or self._timeout * 4)
        except (RedisError, OSError, TimeoutError) as exc:
            self.errors += 1
            self._open_until = time.monotonic() + self.retry_after
            log.warning(
                "redis cache %s failed (%s); skipping redis for %.0fs",
                operation,
                exc,
                self.retry_after,
            )
            if self.on_error is not None:
                self.on_error(operation)
            return default

    async def _replay_purges(self) -> None:
        tags, keys = list(self._pending_tags), list(self._pending_keys)
        if tags:
            await self._purge_script(keys=tags)
        if keys:
            await self._client.unlink(*keys)
        self._pending_tags -= set(tags)
        self._pending_keys -= set(keys)
        self._save_pending()
        log.info("replayed %d cache purges after a redis outage", len(tags) + len(keys))


def _glob(text: str) -> str:
    """Escape glob metacharacters so a prefix matches literally."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
