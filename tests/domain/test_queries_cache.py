"""The recent-results cache of query photos stays within its byte budget."""

from __future__ import annotations

import numpy as np

from facerec.cache.base import image_result_key
from facerec.cache.memory import MemoryCache
from facerec.domain.gallery_cache import QUERY_CACHE_BYTES, PersonCache
from facerec.domain.probes import Analysis, FaceProbe, ImageMeta
from facerec.inference.quality import QualityReport
from facerec.values import BBox, Detection, Erasure


def _analysis(n: int, dim: int = 512) -> Analysis:
    rng = np.random.default_rng(n)
    probe = FaceProbe(
        Detection(BBox(10, 20, 110, 140), 0.99, rng.random((5, 2), dtype=np.float32) * 100),
        QualityReport(80.0, {"sharpness": 0.9}, {"blur": 120.0}),
        index=0,
        embedding=rng.standard_normal(dim).astype(np.float32),
    )
    return Analysis(
        probes=[probe],
        image=ImageMeta(4000, 3000, 3, "JPEG"),
        image_sha256=f"{n:064x}",
        detector="retinaface",
        embedder="arcface",
        space="arcface@1",
        faces_in_image=1,
    )


async def test_query_results_over_the_budget_evict_the_oldest() -> None:
    budget = 64 * 1024  # a few 512-D results
    queries = MemoryCache(max_items=10_000, default_ttl=300, max_bytes=budget)
    cache = PersonCache(MemoryCache(), 60.0, queries=queries)
    keys = [image_result_key(f"{n:064x}", "retinaface", "arcface+balanced") for n in range(100)]
    for n, key in enumerate(keys):
        await cache.put_analysis(key, _analysis(n))
        assert queries.nbytes <= budget
    assert 0 < len(queries) < 100 and queries.evictions == 100 - len(queries)
    assert await cache.get_analysis(keys[0]) is None  # the oldest went first
    newest = await cache.get_analysis(keys[-1])
    assert newest is not None
    np.testing.assert_array_equal(newest.subject.vector, _analysis(99).subject.vector)
    # Erasure still reaches what is kept, and the count follows it down.
    await cache.purge(Erasure(image_sha256s=(f"{99:064x}",)))
    assert await cache.get_analysis(keys[-1]) is None
    assert queries.nbytes < budget


async def test_the_default_query_cache_has_a_byte_budget() -> None:
    cache = PersonCache(MemoryCache(), 60.0)
    assert isinstance(cache.queries, MemoryCache)
    assert cache.queries.max_bytes == QUERY_CACHE_BYTES


async def test_a_damaged_entry_is_a_miss() -> None:
    queries = MemoryCache(max_items=10, max_bytes=1024 * 1024)
    cache = PersonCache(MemoryCache(), 60.0, queries=queries)
    key = image_result_key("0" * 64, "retinaface", "arcface+balanced")
    await cache.put_analysis(key, _analysis(1))
    raw = await queries.get(key)
    assert raw is not None
    await queries.set(key, raw.replace(b'"embedding":"', b'"embedding":"!'))
    assert await cache.get_analysis(key) is None
