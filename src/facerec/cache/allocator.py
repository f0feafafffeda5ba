"""What the C allocator caches: glibc malloc arenas, bounded and trimmed.

Decoding a 4000 px photo allocates tens of MiB at a time in executor threads. With glibc's
defaults each thread gets its own heap (up to 8 per core) and, after the first large buffer is
freed, the mmap threshold rises to 32 MiB, so later large buffers are carved from those heaps
and their freed space stays in the process: RSS grows with the size and the thread spread of
the photos seen, not with any data the service keeps. Fewer arenas, a fixed mmap threshold (large
buffers get their own pages and go back when freed) and a periodic ``malloc_trim`` keep it flat
(docs/memory.md has the measurements). Without glibc (musl, macOS) every function here does
nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sys
from dataclasses import dataclass
from typing import Any

from facerec.config import MemorySettings

logger = logging.getLogger(__name__)

# mallopt parameters (glibc <malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


@dataclass(frozen=True)
class AllocatorTuning:
    glibc: bool
    arena_max: int | None = None
    mmap_threshold: int | None = None
    trim_threshold: int | None = None


def _glibc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator(settings: MemorySettings) -> AllocatorTuning:
    """Apply the arena and mmap-threshold settings to this process (call it early, before the
    executor's threads start)."""
    libc = _glibc()
    if libc is None:
        return AllocatorTuning(glibc=False)
    arena_max = mmap_threshold = None
    if settings.malloc_arena_max and libc.mallopt(M_ARENA_MAX, settings.malloc_arena_max):
        arena_max = settings.malloc_arena_max
    threshold = settings.malloc_mmap_threshold_kb * 1024
    if threshold and libc.mallopt(M_MMAP_THRESHOLD, threshold):
        mmap_threshold = threshold
    # Setting the mmap threshold freezes the trim threshold at glibc's 128 KiB: every free at the
    # top of a heap would give pages back that the next request faults in again (~8% of a
    # 512 px recognize); the periodic malloc_trim returns them instead.
    trim_threshold: int | None = settings.malloc_trim_threshold_kb * 1024
    if not (trim_threshold and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)):
        trim_threshold = None
    logger.debug(
        "malloc: arena_max=%s mmap_threshold=%s trim_threshold=%s",
        arena_max,
        mmap_threshold,
        trim_threshold,
    )
    return AllocatorTuning(
        glibc=True,
        arena_max=arena_max,
        mmap_threshold=mmap_threshold,
        trim_threshold=trim_threshold,
    )


def trim() -> bool:
    """Hand the heaps' free memory back to the system; True when glibc released some."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


async def trim_periodically(interval_s: float) -> None:
    """``malloc_trim`` every ``interval_s`` seconds, in a thread (it walks every arena)."""
    if interval_s <= 0 or _glibc() is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(trim)
