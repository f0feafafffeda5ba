"""The persons a search finds on an HNSW graph are those of exact search.

A recognize asks for ``top_k + 5`` persons (10 by default): ``best_persons`` asks the index for
four faces per person (at least 16), and an i8 / projected graph re-ranks ``rescore`` (4)
candidates per face exactly. Narrower rules were measured and rejected
(``bench/bench_search_width.py``): they lose the second person (the decision's margin) on hard
galleries. These tests hold the rule to exact search's answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from facerec.storage.models import EmbeddingSpace
from facerec.storage.shards import Shard, best_persons, exact_index
from facerec.storage.vector_index import HnswIndex
from tests.storage.test_projection import DIM, faces, ids_of

SPACE = EmbeddingSpace("s@1", DIM, "cosine")


def shards(per_id: int) -> tuple[Shard, Shard, np.ndarray]:
    data, queries = faces(2400 // per_id, per_id, seed=per_id)
    owners = {face: f"p{i // per_id}" for i, face in enumerate(ids_of(data))}
    graph = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=64)
    graph.add(ids_of(data), data)
    exact = exact_index(SPACE, len(data))
    exact.add(ids_of(data), data)
    return Shard(SPACE, graph, owners), Shard(SPACE, exact, dict(owners)), queries


@pytest.mark.parametrize("per_id", [1, 4])
def test_the_persons_found_are_those_of_exact_search(per_id: int) -> None:
    """For a recognize's 10 persons, in galleries of one and of four faces per person: the
    same persons as exact search, in the same order, with the same distances."""
    graph, exact, queries = shards(per_id)
    for query in queries[:100]:
        found = best_persons(graph, query, 10)
        wanted = best_persons(exact, query, 10)
        assert [h.person_id for h in found] == [h.person_id for h in wanted]
        np.testing.assert_allclose(
            [h.distance for h in found], [h.distance for h in wanted], atol=1e-5
        )


def test_a_person_holding_the_nearest_faces_does_not_hide_the_others() -> None:
    """40 faces of one person nearest the query, more than the first fetch for 3 persons (16
    faces): the search asks again, wider, and finds the next two persons."""
    data, queries = faces(600, 4, seed=3)
    crowd = queries[0] + np.float32(0.01) * np.random.default_rng(1).standard_normal(
        (40, DIM), np.float32
    )
    data = np.concatenate([data, crowd])
    owners = {face: f"p{i // 4}" for i, face in enumerate(ids_of(data))}
    owners.update({face: "crowd" for face in ids_of(data)[2400:]})
    graph = HnswIndex(DIM, "cosine", threads=1, dtype="i8", graph_dim=64)
    graph.add(ids_of(data), data)
    exact = exact_index(SPACE, len(data))
    exact.add(ids_of(data), data)
    found = best_persons(Shard(SPACE, graph, owners), queries[0], 3)
    assert found[0].person_id == "crowd" and len({h.person_id for h in found}) == 3
    wanted = best_persons(Shard(SPACE, exact, dict(owners)), queries[0], 3)
    assert [h.person_id for h in found] == [h.person_id for h in wanted]
