"""2 MiB pages under HNSW graphs: the address arithmetic, and the real kernel's answer."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import mmap
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from facerec.config import Settings
from facerec.storage import huge_pages
from facerec.storage.huge_pages import HUGE_PAGE, aligned, anonymous_ranges, new_ranges
from facerec.storage.index_builds import IndexBuilds
from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.snapshots import SnapshotStore
from facerec.storage.vector_index import HnswIndex

MAPS = """\
55d0c0a00000-55d0c0a21000 r--p 00000000 08:01 1234   /usr/bin/python3.11
55d0c2000000-55d0c2400000 rw-p 00000000 00:00 0      [heap]
7f0000000000-7f0000600000 rw-p 00000000 00:00 0
7f0000600000-7f0000800000 ---p 00000000 00:00 0
7f0000800000-7f0000a00000 rw-s 00000000 00:01 77     /dev/zero (deleted)
7f0000a00000-7f0000c00000 rw-p 00001000 08:01 99     /usr/lib/libfoo.so
7f0000c00000-7f0000e00000 r--p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0      [stack]
"""


def test_only_writable_private_anonymous_memory_counts() -> None:
    assert anonymous_ranges(MAPS) == [
        (0x55D0C2000000, 0x55D0C2400000),
        (0x7F0000000000, 0x7F0000600000),
    ]


def test_new_ranges_are_what_no_earlier_range_covers() -> None:
    before = [(100, 200), (300, 400)]
    after = [(0, 50), (100, 250), (280, 500), (600, 700)]
    assert new_ranges(before, after) == [(0, 50), (200, 250), (280, 300), (400, 500), (600, 700)]
    assert new_ranges(after, after) == []
    assert new_ranges([], [(1, 2)]) == [(1, 2)]


def test_only_whole_huge_pages_are_collapsed() -> None:
    h = HUGE_PAGE
    assert aligned([(1, 3 * h + 5), (h + 1, 2 * h - 1), (4 * h, 5 * h)]) == [
        (h, 3 * h),
        (4 * h, 5 * h),
    ]


def _resident(ranges: list[tuple[int, int]]) -> int:
    """Bytes of ``ranges`` backed by memory now (/proc/self/pagemap's present bit)."""
    total = 0
    with open("/proc/self/pagemap", "rb") as pagemap:
        for start, end in ranges:
            pagemap.seek(start // 4096 * 8)
            entries = np.frombuffer(pagemap.read((end - start) // 4096 * 8), "<u8")
            total += 4096 * int(np.count_nonzero(entries >> np.uint64(63)))
    return total


def _kernel_collapses() -> bool:
    """Whether this kernel collapses a plain anonymous mapping of ours (MADV_COLLAPSE, 6.1+,
    THP not disabled): asked directly, without the module under test."""
    return _probe_collapse()[0]


def _probe_collapse() -> tuple[bool, list[int]]:
    """(collapsed, the errno of each failed try). A collapse can fail for a moment (EAGAIN:
    a page still in another CPU's LRU batch, or busy), so each whole huge page of the area is
    tried, in three rounds."""
    if not sys.platform.startswith("linux"):
        return False, []
    area = mmap.mmap(-1, 6 * HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.write(b"\1" * len(area))
    address = ctypes.addressof(ctypes.c_char.from_buffer(area))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    start = (address + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
    errors = []
    for _ in range(3):
        for page in range(start, start + 4 * HUGE_PAGE, HUGE_PAGE):
            if libc.madvise(page, HUGE_PAGE, huge_pages.MADV_COLLAPSE) == 0:
                return True, errors
            errors.append(ctypes.get_errno())
        time.sleep(0.05)
    return False, errors


def _gallery(n: int = 20_000, dim: int = 128) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(5)
    return [f"f{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32)


def test_a_built_graph_lands_on_huge_pages_where_the_kernel_allows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids, vectors = _gallery()
    with caplog.at_level(logging.INFO, logger="facerec.storage.huge_pages"):
        index = HnswIndex(128, "l2", expansion_add=64, threads=2)
        index.add(ids, vectors)
    assert index.graph_memory, "the build mapped no memory of its own"
    if not _kernel_collapses():
        return  # (test_this_linux_kernel_collapses holds CI's machine to the other branch)
    logged = [r.getMessage() for r in caplog.records if "2 MiB pages" in r.getMessage()]
    assert logged and int(logged[0].split(": ")[-1].split()[0]) > 0
    # What the build left in memory is now on huge pages (a second collapse finds them so).
    resident = _resident(aligned(index.graph_memory))
    assert resident > 0
    assert index.back_with_huge_pages() >= 0.8 * resident


def test_collapsing_changes_no_answer_and_can_be_turned_off() -> None:
    ids, vectors = _gallery(8_000)
    index = HnswIndex(128, "cosine", dtype="i8", huge_pages=False, threads=2)
    index.add(ids, vectors)
    assert index.back_with_huge_pages() == 0  # turned off: nothing asked of the kernel
    queries = vectors[:200] + 0.01
    before = [index.search(q, 3) for q in queries]
    index.huge_pages = True
    index.back_with_huge_pages()
    after = [index.search(q, 3) for q in queries]
    assert [found for found, _ in before] == [found for found, _ in after]
    for (_, d1), (_, d2) in zip(before, after, strict=True):
        np.testing.assert_array_equal(d1, d2)


def test_a_restored_graph_is_collapsed_too(tmp_path: Path) -> None:
    ids, vectors = _gallery()
    built = HnswIndex(128, "l2", expansion_add=64, huge_pages=False, threads=2)
    built.add(ids, vectors)
    built.save(tmp_path / "g.hnsw")
    restored = HnswIndex.load(tmp_path / "g.hnsw", huge_pages=False)
    assert restored.graph_memory, "the restore mapped no memory of its own"
    assert restored.back_with_huge_pages() == 0
    # (the same graph answers alike; Gaussian rows make HNSW itself miss now and then)
    queries = vectors[:50] + 0.001
    answers = [built.search(q, 3)[0] for q in queries]
    assert [restored.search(q, 3)[0] for q in queries] == answers
    if not _kernel_collapses():
        return
    resident = _resident(aligned(restored.graph_memory))
    restored.huge_pages = True  # as HnswIndex.load(path) does by default
    assert resident > 0
    assert restored.back_with_huge_pages() >= 0.8 * resident
    assert [restored.search(q, 3)[0] for q in queries] == answers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux kernel interface")
def test_this_linux_kernel_collapses() -> None:
    """CI's machine runs Linux 6.1+ with THP in madvise mode: the collapse must really happen
    there, or the figures in BENCHMARKS.md do not describe what the service does."""
    collapsed, errors = _probe_collapse()
    assert collapsed, f"MADV_COLLAPSE failed: errno {errors}"


@pytest.mark.parametrize("setting", [True, False])
def test_the_setting_reaches_built_and_restored_graphs(tmp_path: Path, setting: bool) -> None:
    options = IndexOptions.from_settings(Settings(index={"hnsw_huge_pages": setting}))
    assert options.huge_pages is setting and IndexOptions().huge_pages is True
    builds = IndexBuilds(
        None,  # type: ignore[arg-type]  # hnsw_from reads no rows
        options,
        {},
        asyncio.Lock(),
    )
    space = EmbeddingSpace("s@1", 128, "l2")
    ids, vectors = _gallery(500)
    built = builds.hnsw_from(space, ids, vectors)
    assert built.huge_pages is setting
    store = SnapshotStore(tmp_path, huge_pages=options.huge_pages)
    store.write("default", space.name, built, 5, {})
    restored = store.read("default", space, 0, 9)
    assert restored is not None and restored.index.huge_pages is setting
