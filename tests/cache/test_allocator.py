"""glibc malloc tuning: applied where glibc is, harmless elsewhere (no RSS is asserted)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from facerec.cache.allocator import trim, trim_periodically, tune_allocator
from facerec.config import MemorySettings, Settings

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")


@glibc_only
def test_tuning_applies_the_settings() -> None:
    tuning = tune_allocator(MemorySettings(malloc_arena_max=4, malloc_mmap_threshold_kb=2048))
    if not tuning.glibc:
        pytest.skip("not glibc (musl)")
    assert tuning.arena_max == 4 and tuning.mmap_threshold == 2048 * 1024
    defaults = tune_allocator(MemorySettings())
    assert defaults.arena_max == 2 and defaults.mmap_threshold == 4096 * 1024
    assert defaults.trim_threshold == 64 * 1024 * 1024


@glibc_only
def test_zero_leaves_glibc_defaults_alone() -> None:
    tuning = tune_allocator(
        MemorySettings(malloc_arena_max=0, malloc_mmap_threshold_kb=0, malloc_trim_threshold_kb=0)
    )
    assert tuning.arena_max is None and tuning.mmap_threshold is None
    assert tuning.trim_threshold is None
    tune_allocator(MemorySettings())  # back to the service's defaults for later tests


def test_trim_after_a_large_free_does_not_fail() -> None:
    buffers = [bytearray(3 * 1024 * 1024) for _ in range(8)]
    del buffers
    assert isinstance(trim(), bool)


async def test_periodic_trim_runs_and_stops_when_cancelled() -> None:
    task = asyncio.create_task(trim_periodically(0.01))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(trim_periodically(0), 1.0)  # 0: returns at once


def test_memory_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREC_MEMORY__MALLOC_ARENA_MAX", "0")
    monkeypatch.setenv("FACEREC_MEMORY__MALLOC_TRIM_INTERVAL_S", "0")
    memory = Settings().memory
    assert memory.malloc_arena_max == 0 and memory.malloc_trim_interval_s == 0
