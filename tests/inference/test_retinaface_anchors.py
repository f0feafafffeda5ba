"""RetinaFace's anchors are computed for the kept candidates only (no grid cached per input
shape); they must be exactly the anchors of the full grid, in the network's output order."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.inference.detectors.decoding import STRIDES, feature_sizes
from facerec.inference.detectors.retinaface import ANCHOR_SIZES, anchors_at


def full_grid(height: int, width: int) -> NDArray[np.float32]:
    """Every anchor, written out the slow way: level by level, row-major, a cell's anchors
    together (the order RetinaFace emits its outputs in)."""
    rows = []
    for stride, sizes, (ny, nx) in zip(
        STRIDES, ANCHOR_SIZES, feature_sizes(height, width), strict=True
    ):
        for y in range(ny):
            for x in range(nx):
                for size in sizes:
                    rows.append(((x + 0.5) * stride, (y + 0.5) * stride, size))
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("shape", [(32, 32), (640, 480), (480, 640), (1024, 768), (96, 1024)])
def test_the_kept_anchors_are_the_full_grids_rows(shape: tuple[int, int]) -> None:
    grid = full_grid(*shape)
    rng = np.random.default_rng(7)
    index = rng.permutation(len(grid))[:500]
    # The first and last of every level, where an off-by-one would show.
    edges = np.cumsum([0, *(ny * nx * 2 for ny, nx in feature_sizes(*shape))])
    index = np.concatenate([index, edges[:-1], edges[1:] - 1]).astype(np.intp)
    np.testing.assert_array_equal(anchors_at(index, *shape), grid[index])


def test_no_candidates_no_anchors() -> None:
    assert anchors_at(np.empty(0, dtype=np.intp), 640, 640).shape == (0, 3)
