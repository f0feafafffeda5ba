"""Idempotency-Key records in the gallery database (table ``idempotency_keys``, revision 0003).

A request with a key first *claims* it (one short write transaction, serialised like every write,
so two concurrent requests with one key never both run); when it succeeds its response is stored
with the key, when it fails the claim is released so a retry runs again. A claim whose process
died holds the key only until its lease ends. Records expire after ``ttl``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.storage.schema import idempotency_keys as keys
from facerec.storage.sql_support import utcnow, write_transaction

IDEMPOTENCY_LOCK_KEY = 7_301_652_003
DEFAULT_TTL = timedelta(hours=24)
DEFAULT_LEASE = timedelta(minutes=2)  # longer than any enrollment request takes
_PURGE_EVERY_S = 300.0


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # this request runs; complete() or release() it
    REPLAY = "replay"  # a response is stored: send it
    IN_PROGRESS = "in_progress"  # another request with this key is running
    MISMATCH = "mismatch"  # the key was used for another request


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    status: int | None = None
    body: bytes | None = None
    route: str | None = None


class SqlIdempotencyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl: timedelta = DEFAULT_TTL,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._engine = engine
        self.ttl = ttl
        self.lease = lease
        self._purged_at = 0.0

    async def claim(self, key: str, route: str, request_hash: str) -> Claim:
        now = utcnow()
        async with write_transaction(self._engine, lock_key=IDEMPOTENCY_LOCK_KEY) as conn:
            if time.monotonic() - self._purged_at > _PURGE_EVERY_S:
                await conn.execute(delete(keys).where(keys.c.expires_at < now))
                self._purged_at = time.monotonic()
            query = select(
                keys.c.route,
                keys.c.request_hash,
                keys.c.status,
                keys.c.body,
                keys.c.locked_until,
                keys.c.expires_at,
            ).where(keys.c.key == key)
            row = (await conn.execute(query)).first()
            if row is not None and row.expires_at <= now:
                await conn.execute(delete(keys).where(keys.c.key == key))
                row = None
            if row is None:
                values = {
                    "key": key,
                    "route": route,
                    "request_hash": request_hash,
                    "status": None,
                    "body": None,
                    "created_at": now,
                    "locked_until": now + self.lease,
                    "expires_at": now + self.ttl,
                }
                await conn.execute(insert(keys).values(values))
                return Claim(ClaimState.CLAIMED)
            if row.request_hash != request_hash:
                return Claim(ClaimState.MISMATCH, route=row.route)
            if row.status is not None:
                return Claim(ClaimState.REPLAY, status=int(row.status), body=bytes(row.body or b""))
            if row.locked_until > now:
                return Claim(ClaimState.IN_PROGRESS)
            # The first request's process died (or lost the database) before finishing: take over.
            await conn.execute(
                update(keys).where(keys.c.key == key).values(locked_until=now + self.lease)
            )
            return Claim(ClaimState.CLAIMED)

    async def complete(
        self, key: str, status: int, body: bytes, person_id: str | None = None
    ) -> None:
        """Store the response of a claimed key (replayed to every later retry until expiry).
        ``person_id``: the stored person it names; erasing that person deletes the record."""
        now = utcnow()
        async with write_transaction(self._engine, lock_key=IDEMPOTENCY_LOCK_KEY) as conn:
            await conn.execute(
                update(keys)
                .where(keys.c.key == key, keys.c.status.is_(None))
                .values(status=status, body=body, expires_at=now + self.ttl, person_id=person_id)
            )

    async def release(self, key: str) -> None:
        """Give a claimed key up (the request failed): a retry runs it again."""
        async with write_transaction(self._engine, lock_key=IDEMPOTENCY_LOCK_KEY) as conn:
            await conn.execute(delete(keys).where(keys.c.key == key, keys.c.status.is_(None)))


async def forget_responses(conn: AsyncConnection, person_ids: Sequence[str]) -> None:
    """Inside an erasure's transaction: stored responses naming these persons go with them."""
    if person_ids:
        await conn.execute(delete(keys).where(keys.c.person_id.in_(list(person_ids))))
