"""The projection's checks count near ties as found: a gallery of one face per person."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.storage import projection
from facerec.storage.hnsw_index import HnswIndex
from facerec.storage.vector_index import ExactIndex
from tests.storage.test_projection import DIM, faces, ids_of


def test_self_check_counts_a_face_within_a_tie_of_the_nearest() -> None:
    rng = np.random.default_rng(8)
    rows = rng.standard_normal((400, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    sims = rows @ rows.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1)

    def ranked(place: int) -> dict[int, int]:
        return {row: int(order[row, place]) for row in range(len(rows))}

    second, last = ranked(1), ranked(len(rows) - 2)
    near_tie = [
        row for row in range(len(rows)) if sims[row, order[row, 0]] - sims[row, second[row]] < 0.05
    ]
    share = projection.self_check(rows, second.__getitem__, queries=len(rows))
    assert share == pytest.approx(len(near_tie) / len(rows))
    assert 0 < share < 1  # Gaussian rows: some second-nearest within the tie, some not
    assert projection.self_check(rows, last.__getitem__, queries=len(rows)) == 0.0


def test_a_gallery_of_one_face_per_person_gets_the_projected_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One face per person: each face's nearest other is a stranger among many at about the
    same similarity. Counting exact ties only, the checks refused this gallery a projection
    (the full-width graph instead); counting near ties, it gets one, and new photos of its
    persons find their face as exact search does."""
    data, queries = faces(3000, 1, subspace=48)
    exact = ExactIndex(DIM, "cosine")
    exact.add(ids_of(data), data)
    monkeypatch.setattr(projection, "TIE", 1e-6)
    strict = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32)
    strict.add(ids_of(data), data)
    assert strict.projection is None
    monkeypatch.undo()
    index = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=32)
    index.add(ids_of(data), data)
    assert index.projection is not None and int(index._index.ndim) <= 32
    agree = sum(index.search(q, 1)[0] == exact.search(q, 1)[0] for q in queries)
    assert agree == len(queries)
