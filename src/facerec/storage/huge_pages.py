"""2 MiB pages under a large HNSW graph (Linux transparent huge pages, ``MADV_COLLAPSE``).

A search of a million-face graph hops between nodes scattered over hundreds of MB. With 4 KiB
pages nearly every hop misses the TLB as well as the cache, and the page walk costs about as
much as the cache miss; with 2 MiB pages the walk mostly hits. usearch allocates its graph
itself, so its addresses are found the only way open to us: the anonymous memory that appears
in ``/proc/self/maps`` while a graph is built or restored (:func:`recording`). Those ranges are
then collapsed into huge pages at once (:func:`collapse`, ``MADV_COLLAPSE``, Linux 6.1+),
whatever the system's THP mode (``madvise`` on most distributions), without asking khugepaged
to fill sparse memory later. Memory other threads mapped meanwhile may be collapsed too; that
costs nothing but the copy. Pages the graph maps later (faces added one by one) stay 4 KiB.

Anywhere else (another OS, an older kernel, THP disabled for the process), nothing happens
and searches run on 4 KiB pages as before. ``BENCHMARKS.md`` (index_sweep) has the figures.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

HUGE_PAGE = 2 << 20
MADV_COLLAPSE = 25  # linux/mman.h, the same on x86-64 and arm64
MAPS = "/proc/self/maps"

Range = tuple[int, int]  # [start, end) of virtual addresses


def anonymous_ranges(maps: str | None = None) -> list[Range]:
    """Writable private anonymous mappings (the heap included), sorted by address; [] where
    ``/proc/self/maps`` does not exist. ``maps``: that file's text (tests)."""
    if maps is None:
        try:
            with open(MAPS, encoding="ascii", errors="replace") as handle:
                maps = handle.read()
        except OSError:
            return []
    ranges: list[Range] = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "p":
            continue
        name = fields[5].strip() if len(fields) == 6 else ""
        if name not in ("", "[heap]"):
            continue
        start, _, end = fields[0].partition("-")
        ranges.append((int(start, 16), int(end, 16)))
    return sorted(ranges)


def new_ranges(before: list[Range], after: list[Range]) -> list[Range]:
    """The parts of ``after`` that no range of ``before`` covers (both sorted)."""
    found: list[Range] = []
    for start, end in after:
        cursor = start
        for old_start, old_end in before:
            if old_end <= cursor or old_start >= end:
                continue
            if old_start > cursor:
                found.append((cursor, old_start))
            cursor = max(cursor, old_end)
            if cursor >= end:
                break
        if cursor < end:
            found.append((cursor, end))
    return found


@contextmanager
def recording() -> Iterator[list[Range]]:
    """Yields a list that, once the block has run, holds the anonymous memory mapped during it
    (and still mapped at its end)."""
    before = anonymous_ranges()
    found: list[Range] = []
    yield found
    found.extend(new_ranges(before, anonymous_ranges()))


def aligned(ranges: list[Range]) -> list[Range]:
    """The whole 2 MiB pages inside each range (a collapse never reaches past a range)."""
    inner = []
    for start, end in ranges:
        lo = (start + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
        hi = end // HUGE_PAGE * HUGE_PAGE
        if hi > lo:
            inner.append((lo, hi))
    return inner


def collapse(ranges: list[Range], what: str = "") -> int:
    """Collapse the 2 MiB pages of ``ranges`` into huge pages; the bytes the kernel collapsed
    (0 where it cannot: not Linux, no ``MADV_COLLAPSE``, THP off). Best effort: a page with
    nothing mapped, gone since, or without a free huge page is left as it is. ``what``: logged
    with the bytes collapsed and the time taken."""
    started = time.perf_counter()
    done = _collapsed(ranges)
    if done and what:
        taken = time.perf_counter() - started
        log.info("%s on 2 MiB pages: %d MB in %.2f s", what, done >> 20, taken)
    return done


def _collapsed(ranges: list[Range]) -> int:
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    done = 0
    for start, end in aligned(ranges):
        # One call per huge page: the kernel answers a range with its last failure only.
        # EINVAL: nothing mapped there yet (or no MADV_COLLAPSE, or THP off: then every call
        # fails, cheaply); EAGAIN / ENOMEM: no free huge page, or unmapped since.
        for page in range(start, end, HUGE_PAGE):
            if madvise(page, HUGE_PAGE, MADV_COLLAPSE) == 0:
                done += HUGE_PAGE
    return done
