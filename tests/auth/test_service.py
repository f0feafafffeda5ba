"""Verification against a real (SQLite) store: expiry, revocation and its bound, the cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facerec.auth.keys import KeyHasher, KeySpec
from facerec.auth.service import KeyService
from facerec.auth.store import SqlAuthStore
from facerec.errors import NotFoundError, UnauthorizedError


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def service(store: SqlAuthStore, clocks: Clocks, pepper: str = "p") -> KeyService:
    return KeyService(
        store, KeyHasher(pepper), cache_seconds=5.0, clock=clocks.monotonic, now=clocks.now
    )


SPEC = KeySpec(tenant="acme", scopes=frozenset({"detect", "recognize"}))


async def test_create_then_verify(store: SqlAuthStore) -> None:
    clocks = Clocks()
    keys = service(store, clocks)
    text, record = await keys.create(SPEC, created_by="cli")
    principal = await keys.verify(text)
    assert principal.tenant == "acme" and principal.key_id == record.key_id
    assert principal.scopes == frozenset({"detect", "recognize"}) and principal.collections is None
    stored = await store.get_key(record.key_id)
    assert stored is not None and text.split("_")[-1] not in stored.secret_hash


async def test_wrong_secret_unknown_id_and_other_pepper_are_refused(store: SqlAuthStore) -> None:
    clocks = Clocks()
    keys = service(store, clocks)
    text, _ = await keys.create(SPEC, created_by="cli")
    tampered = text[:-1] + ("A" if text[-1] != "A" else "B")
    for bad in (tampered, "fk_000000000000_" + "a" * 43, "nonsense"):
        with pytest.raises(UnauthorizedError) as refused:
            await keys.verify(bad)
        assert refused.value.code == "invalid_api_key"
    with pytest.raises(UnauthorizedError):
        await service(store, clocks, pepper="other").verify(text)


async def test_expiry_is_checked_on_every_request(store: SqlAuthStore) -> None:
    clocks = Clocks()
    keys = service(store, clocks)
    spec = KeySpec(tenant="acme", scopes=SPEC.scopes, expires_at=clocks.wall + timedelta(hours=1))
    text, _ = await keys.create(spec, created_by="cli")
    await keys.verify(text)
    clocks.advance(3600)  # the record is still cached: expiry does not wait for it
    with pytest.raises(UnauthorizedError) as refused:
        await keys.verify(text)
    assert refused.value.code == "key_expired"


async def test_revocation_is_immediate_here_and_bounded_elsewhere(store: SqlAuthStore) -> None:
    clocks = Clocks()
    here, elsewhere = service(store, clocks), service(store, clocks)
    text, record = await here.create(SPEC, created_by="cli")
    await here.verify(text)
    await elsewhere.verify(text)  # cached in the other process
    await here.revoke(record.key_id)
    with pytest.raises(UnauthorizedError) as refused:
        await here.verify(text)
    assert refused.value.code == "key_revoked"
    await elsewhere.verify(text)  # within the cache bound
    clocks.advance(5.0)
    with pytest.raises(UnauthorizedError):
        await elsewhere.verify(text)
    again = await here.revoke(record.key_id)  # idempotent, keeps the first time
    assert again.revoked_at == record.created_at
    with pytest.raises(NotFoundError):
        await here.revoke("ffffffffffff")


async def test_records_are_cached(store: SqlAuthStore, monkeypatch: pytest.MonkeyPatch) -> None:
    clocks = Clocks()
    keys = service(store, clocks)
    text, _ = await keys.create(SPEC, created_by="cli")
    reads = 0
    original = store.get_key

    async def counting(key_id: str):  # type: ignore[no-untyped-def]
        nonlocal reads
        reads += 1
        return await original(key_id)

    monkeypatch.setattr(store, "get_key", counting)
    for _ in range(20):
        await keys.verify(text)
    assert reads == 1
    clocks.advance(5.0)
    await keys.verify(text)
    assert reads == 2


async def test_listing(store: SqlAuthStore) -> None:
    keys = service(store, Clocks())
    await keys.create(SPEC, created_by="cli")
    await keys.create(KeySpec(tenant="other", scopes=frozenset({"admin"})), created_by="cli")
    assert {r.tenant for r in await keys.list()} == {"acme", "other"}
    assert [r.tenant for r in await keys.list("acme")] == ["acme"]
