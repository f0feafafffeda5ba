"""A query photo's cache key: the same SHA-256 whatever its size, computed off the event loop
when the photo is large (hashing 15 MB would hold every other request for ~10 ms)."""

from __future__ import annotations

import hashlib
import threading

import pytest

from facerec.domain import queries
from facerec.domain.queries import HASH_ON_LOOP_BYTES, image_key_digest


async def test_a_large_photo_is_hashed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def spying(data: bytes) -> str:
        threads.append(threading.current_thread())
        return hashlib.sha256(data).hexdigest()

    monkeypatch.setattr(queries, "digest_of", spying)
    small = bytes(range(256)) * (HASH_ON_LOOP_BYTES // 256)
    large = small + b"\xff"
    assert await image_key_digest(small) == hashlib.sha256(small).hexdigest()
    assert await image_key_digest(large) == hashlib.sha256(large).hexdigest()
    loop_thread = threading.current_thread()
    assert threads[0] is loop_thread
    assert threads[1] is not loop_thread
