"""Optimal one-to-one assignment (the Hungarian method), for tagging and stream tracking.

scipy is imported on the first call: ``scipy.optimize`` costs a process ~48 MiB of resident
memory and ~0.5 s of start-up, which a worker that never tags a group photo or tracks a stream
should not pay (docs/memory.md).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def optimal_assignment(
    matrix: NDArray[np.float64] | NDArray[np.float32], *, maximize: bool = False
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(rows, cols) of the assignment with the least (``maximize``: the largest) total."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(matrix, maximize=maximize)
    return np.asarray(rows, np.intp), np.asarray(cols, np.intp)
