"""One query to a usearch graph, called as cheaply as Python allows (:func:`graph_search`)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def graph_search(
    index: Any, query: NDArray[np.float32], count: int
) -> tuple[NDArray[np.uint64], NDArray[np.float32]]:
    """The ``count`` nearest keys of one query in a usearch ``Index`` and their graph distances,
    on one thread (usearch's default hands even one query to a thread pool: +0.1 ms). It calls
    the compiled index as ``Index.search`` does, without the ``BatchMatches`` and ``Matches``
    objects that wrap the answer (~15-20 µs of Python, ~6% of a 1M-face search);
    tests/storage/test_vector_index.py holds it to ``Index.search``'s answers."""
    from usearch.compiled import ScalarKind

    keys, distances, counts = index._compiled.search_many(
        query.reshape(1, -1), count=count, exact=False, threads=1, dtype=ScalarKind.Unknown
    )[:3]
    found = int(counts[0])
    return (
        np.asarray(keys[0, :found], dtype=np.uint64),
        np.asarray(distances[0, :found], dtype=np.float32),
    )


def graph_search_many(
    index: Any, queries: NDArray[np.float32], count: int, threads: int
) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The ``count`` nearest keys of each row of ``queries`` (``(n, count)``, rows padded past
    their found count) and how many each row found."""
    from usearch.compiled import ScalarKind

    keys, _, counts = index._compiled.search_many(
        np.ascontiguousarray(queries, np.float32),
        count=count,
        exact=False,
        threads=threads,
        dtype=ScalarKind.Unknown,
    )[:3]
    return np.asarray(keys, dtype=np.uint64), np.asarray(counts, dtype=np.int64)
