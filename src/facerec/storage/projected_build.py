"""The first add of an HNSW graph asked to run on fewer dimensions (``graph_dim``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from facerec.storage import projection
from facerec.storage.build_order import add_in_order

if TYPE_CHECKING:
    from facerec.storage.hnsw_index import HnswIndex

logger = logging.getLogger(__name__)


def projected_build(
    index: HnswIndex, keys: NDArray[np.uint64], matrix: NDArray[np.float32]
) -> NDArray[np.float32]:
    """The first add of a ``graph_dim`` index: fit the projection, build the graph on it,
    and keep it only if its searches find what exact search finds on this very gallery
    (:func:`projection.self_check`); otherwise the full-dimension graph is built. Returns the rows
    the graph holds (projected or not)."""
    assert index._exact is not None
    matrix_p = projection.fit(matrix, index.graph_dim)
    if matrix_p is not None:
        rows = index._exact.data[: len(keys)]
        index.projection = matrix_p = projection.narrowest(rows, matrix_p)
        index._index = index._graph(matrix_p.shape[1], index.expansion_search)
        graph_rows = projection.project(matrix, matrix_p)
        add_in_order(index._index, keys, graph_rows, index.threads, index.ordered_build)

        def nearest_other(row: int) -> int:
            found, _ = index._candidates(rows[row], 2)
            others = [int(k) for k in found.tolist() if k != row]
            return others[0] if others else -1

        recall = projection.self_check(rows, nearest_other)
        if recall >= projection.MIN_RECALL:
            logger.info(
                "HNSW graph on %d of %d dimensions (at most %d; self-check recall %.3f)",
                matrix_p.shape[1],
                index.dim,
                index.graph_dim,
                recall,
            )
            return graph_rows
        logger.warning(
            "HNSW graph on %d dimensions found %.3f of the exact nearest faces: "
            "building it on all %d",
            matrix_p.shape[1],
            recall,
            index.dim,
        )
    index.projection = None
    index._index = index._graph(index.dim, index.expansion_search)
    add_in_order(index._index, keys, matrix, index.threads, index.ordered_build)
    return matrix
