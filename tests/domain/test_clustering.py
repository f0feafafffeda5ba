"""Chinese whispers on the threshold graph, on synthetic embeddings with a known truth."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from facerec.domain import clustering
from facerec.domain.clustering import ClusterParams

PARAMS = ClusterParams(metric="l2", threshold=0.6)


def identities(
    people: int, samples: int, seed: int = 0, dim: int = 128
) -> tuple[NDArray[np.float32], list[int]]:
    """dlib-like vectors: same person ~0.4 apart, different persons ~0.85 apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.85 / np.sqrt(2 * dim), (people, dim))
    noise = rng.normal(0.0, 0.4 / np.sqrt(2 * dim), (people * samples, dim))
    truth = [p for p in range(people) for _ in range(samples)]
    return (centres[truth] + noise).astype(np.float32), truth


def same_partition(labels: list[int | None] | list[str | None], truth: list[int]) -> bool:
    return all(
        (labels[i] == labels[j] and labels[i] is not None) == (truth[i] == truth[j])
        for i, j in itertools.combinations(range(len(truth)), 2)
    )


def test_full_clustering_finds_the_identities() -> None:
    vectors, truth = identities(20, 5)
    labels = clustering.cluster(vectors, PARAMS)
    assert same_partition(labels, truth)
    assert len({label for label in labels if label is not None}) == 20


def test_singletons_are_no_suggestion() -> None:
    vectors, _ = identities(3, 1)
    assert clustering.cluster(vectors, PARAMS) == [None, None, None]
    assert clustering.cluster(np.zeros((0, 128), np.float32), PARAMS) == []


def test_cosine_metric() -> None:
    vectors, truth = identities(10, 4, seed=3)
    params = ClusterParams(metric="cosine", threshold=0.3)
    labels = clustering.cluster(vectors - vectors.mean(axis=0), params)
    assert same_partition(labels, truth)


def test_incremental_join_and_recluster() -> None:
    vectors, truth = identities(6, 4, seed=1)
    ids = iter(f"s{i}" for i in range(100))
    # The first three samples of each person, clustered from nothing.
    first = [i for i in range(len(truth)) if i % 4 != 3]
    labels = clustering.update(
        vectors[first], [None] * len(first), list(range(len(first))), PARAMS, lambda: next(ids)
    )
    assert same_partition(labels, [truth[i] for i in first])
    before = dict(zip(first, labels, strict=True))
    # The fourth sample of each person joins its person's suggestion, ids unchanged.
    order = first + [i for i in range(len(truth)) if i % 4 == 3]
    current = [before.get(i) for i in order]
    new = list(range(len(first), len(order)))
    after = clustering.update(vectors[order], current, new, PARAMS, lambda: next(ids))
    assert same_partition(after, [truth[i] for i in order])
    assert after[: len(first)] == labels  # nobody's suggestion id changed


def test_a_new_face_between_singletons_makes_a_suggestion() -> None:
    vectors, _ = identities(2, 2, seed=2)
    ids = iter(["a", "b", "c"])
    # One sample of each person: no suggestion; the second sample of person 0 makes one.
    order = [0, 2, 1]
    labels = clustering.update(vectors[order], [None, None, None], [2], PARAMS, lambda: next(ids))
    assert labels[0] == labels[2] == "a" and labels[1] is None


def test_dismissed_faces_stay_out() -> None:
    """Dismissal is the caller's: excluded faces are simply not passed in again."""
    vectors, truth = identities(3, 3, seed=4)
    labels = clustering.cluster(vectors, PARAMS)
    dismissed = {i for i, t in enumerate(truth) if t == 0}
    kept = [i for i in range(len(truth)) if i not in dismissed]
    again = clustering.cluster(vectors[kept], PARAMS)
    assert len({label for label in again if label is not None}) == 2
    assert len({label for label in labels if label is not None}) == 3


def test_cohesion_is_the_mean_pair_similarity() -> None:
    vectors = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.4]], np.float32)
    similarity = [1.0 - d for d in (0.3, 0.4, 0.5)]
    value = clustering.cohesion(vectors, "l2", lambda d: 1.0 - d)
    assert abs(value - float(np.mean(similarity))) < 1e-6
