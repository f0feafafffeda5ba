"""The assignment of identities over the faces of one photo (pure)."""

from __future__ import annotations

from facerec.domain.open_set import Candidate, operating_point, rank
from facerec.domain.tagging import assign
from tests.domain.fakes import FakeEmbedder, synthetic_calibration

EMBEDDER = FakeEmbedder(synthetic_calibration())
POINT = operating_point(
    EMBEDDER, gallery_size=10, comparisons=10, target_fpir=0.01, similarity_threshold=None
)
T = POINT.distance_threshold


def cand(person: str, distance: float) -> Candidate:
    return Candidate(person, None, distance, distance, 1, EMBEDDER.similarity(distance))


def at(similarity: float) -> float:
    return EMBEDDER.distance_for_similarity(similarity)


def test_each_person_once_maximising_total_similarity() -> None:
    # Face 0 clearly prefers a (0.99) but also matches b (0.90); face 1 matches only a (0.95).
    # Greedy would give a to face 0 and leave face 1 unknown (total 0.99); the assignment gives
    # b to face 0 and a to face 1 (total 1.85).
    assert at(0.90) < T
    faces = [
        rank([cand("a", at(0.99)), cand("b", at(0.90))]),
        rank([cand("a", at(0.95)), cand("c", T + 0.3)]),
    ]
    people, decided = assign(faces, POINT)
    assert people == ["b", "a"]
    assert decided == ["assignment", "threshold"]


def test_the_weaker_face_falls_to_unknown() -> None:
    faces = [rank([cand("a", T - 0.4)]), rank([cand("a", T - 0.1)]), rank([cand("z", T + 0.2)])]
    people, decided = assign(faces, POINT)
    assert people == ["a", None, None]
    assert decided == ["threshold", "assignment", "threshold"]


def test_ambiguous_faces_and_empty_photos() -> None:
    tie = rank([cand("a", T - 0.2), cand("b", T - 0.2005)])
    people, decided = assign([tie, []], POINT)
    assert people == [None, None] and decided[0] == "margin"
    assert assign([], POINT) == ([], [])
