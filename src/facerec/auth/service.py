"""Creating, listing, revoking and verifying API keys.

Verification is fast: a key's record is read from the database at most once per
``cache_seconds`` per process (default 5 s) and the presented secret is checked with one HMAC
and a constant-time compare on every request. Revocation therefore takes effect at once in the
process that revoked it and within ``cache_seconds`` everywhere else (other workers, other
hosts, the command line); expiry is checked on every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from facerec.auth.keys import KeyHasher, KeyRecord, KeySpec, ParsedKey, new_key, parse_key
from facerec.auth.principal import Principal
from facerec.auth.store import SqlAuthStore
from facerec.errors import ConflictError, NotFoundError, UnauthorizedError

MAX_CACHED_KEYS = 10_000
_CREATE_ATTEMPTS = 3
_DUMMY = ParsedKey("000000000000", "0" * 43)


def utcnow() -> datetime:
    return datetime.now(UTC)


class KeyService:
    def __init__(
        self,
        store: SqlAuthStore,
        hasher: KeyHasher,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def create(self, spec: KeySpec, *, created_by: str) -> tuple[str, KeyRecord]:
        """A new key: its full text (shown once, never stored) and its record."""
        now = self._now()
        spec = spec.validated(now)
        for attempt in range(_CREATE_ATTEMPTS):
            text, parsed = new_key()
            record = KeyRecord(
                key_id=parsed.key_id,
                tenant=spec.tenant,
                name=spec.name,
                scopes=spec.scopes,
                collections=spec.collections,
                created_at=now,
                expires_at=spec.expires_at,
                revoked_at=None,
                created_by=created_by,
                secret_hash=self.hasher.hash(parsed),
            )
            try:
                await self.store.add_key(record)
            except ConflictError:
                if attempt + 1 == _CREATE_ATTEMPTS:
                    raise
                continue
            self._cache.pop(record.key_id, None)
            return text, record
        raise AssertionError("unreachable")  # pragma: no cover

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        return await self.store.list_keys(tenant)

    async def get(self, key_id: str) -> KeyRecord:
        record = await self.store.get_key(key_id)
        if record is None:
            raise NotFoundError(f"no API key {key_id!r}", code="key_not_found", key_id=key_id)
        return record

    async def revoke(self, key_id: str) -> KeyRecord:
        record = await self.store.revoke_key(key_id, self._now())
        if record is None:
            raise NotFoundError(f"no API key {key_id!r}", code="key_not_found", key_id=key_id)
        self._cache.pop(key_id, None)
        return record

    async def verify(self, presented: str) -> Principal:
        """The principal of a valid key; :class:`UnauthorizedError` for anything else."""
        parsed = parse_key(presented)
        if parsed is None:
            raise UnauthorizedError("the API key is not valid", code="invalid_api_key")
        record = await self._record(parsed.key_id)
        if record is None:
            self.hasher.matches(_DUMMY, "0" * 64)  # the same work as for a known key id
            raise UnauthorizedError("the API key is not valid", code="invalid_api_key")
        if not self.hasher.matches(parsed, record.secret_hash):
            raise UnauthorizedError("the API key is not valid", code="invalid_api_key")
        status = record.status(self._now())
        if status == "revoked":
            raise UnauthorizedError("the API key was revoked", code="key_revoked")
        if status == "expired":
            raise UnauthorizedError("the API key has expired", code="key_expired")
        return record.principal()

    def forget(self, key_id: str) -> None:
        self._cache.pop(key_id, None)

    async def _record(self, key_id: str) -> KeyRecord | None:
        cached = self._cache.get(key_id)
        now = self._clock()
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        record = await self.store.get_key(key_id)
        if len(self._cache) >= MAX_CACHED_KEYS:
            self._cache.clear()
        self._cache[key_id] = (now, record)
        return record
