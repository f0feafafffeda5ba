"""The Idempotency-Key store on every backend: claim, replay, mismatch, release, expiry, lease,
and one winner among concurrent claims from two processes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from facerec.storage.idempotency import ClaimState, SqlIdempotencyStore
from facerec.storage.schema import idempotency_keys
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.sql_support import utcnow, write_transaction
from tests.storage.helpers import Backend


async def test_claim_complete_replay_and_mismatch(backend: Backend) -> None:
    store = backend.repo.idempotency
    assert (await store.claim("k1", "add-face", "h1")).state is ClaimState.CLAIMED
    assert (await store.claim("k1", "add-face", "h1")).state is ClaimState.IN_PROGRESS
    assert (await store.claim("k1", "add-face", "h2")).state is ClaimState.MISMATCH
    await store.complete("k1", 200, b'{"ok":true}')
    replay = await store.claim("k1", "add-face", "h1")
    assert (replay.state, replay.status, replay.body) == (ClaimState.REPLAY, 200, b'{"ok":true}')
    assert (await store.claim("k1", "add-face", "h2")).state is ClaimState.MISMATCH
    # A released key (the request failed) runs again.
    assert (await store.claim("k2", "add-face", "h1")).state is ClaimState.CLAIMED
    await store.release("k2")
    assert (await store.claim("k2", "add-face", "h9")).state is ClaimState.CLAIMED


async def test_expiry_and_lease(backend: Backend) -> None:
    store = backend.repo.idempotency
    await store.claim("old", "r", "h")
    await store.complete("old", 200, b"{}")
    await store.claim("stuck", "r", "h")
    past = utcnow() - timedelta(seconds=1)
    async with write_transaction(backend.engine) as conn:
        await conn.execute(
            update(idempotency_keys).where(idempotency_keys.c.key == "old").values(expires_at=past)
        )
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "stuck")
            .values(locked_until=past)
        )
    # Expired: the key is free for any request; a lapsed lease is taken over by the same request.
    assert (await store.claim("old", "r", "other")).state is ClaimState.CLAIMED
    assert (await store.claim("stuck", "r", "other")).state is ClaimState.MISMATCH
    assert (await store.claim("stuck", "r", "h")).state is ClaimState.CLAIMED


async def test_one_winner_among_concurrent_claims(backend: Backend) -> None:
    other = backend.new_engine()
    try:
        stores = [backend.repo.idempotency, SqlIdempotencyStore(other)]
        claims = await asyncio.gather(
            *(stores[i % 2].claim("same", "add-face", "h") for i in range(10))
        )
        states = [c.state for c in claims]
        assert states.count(ClaimState.CLAIMED) == 1
        assert states.count(ClaimState.IN_PROGRESS) == 9
    finally:
        await other.dispose()


async def test_repository_has_a_store(backend: Backend) -> None:
    assert isinstance(backend.repo, SqlGalleryRepository)
    assert backend.repo.idempotency.ttl == timedelta(hours=24)
