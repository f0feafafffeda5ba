"""Which face is the subject, and when an enrollment photo is ambiguous (pure geometry)."""

from __future__ import annotations

from facerec.domain.selection import competing_faces, rank_faces
from facerec.inference.quality import QualityReport
from facerec.values import BBox, Detection

W, H = 1000, 800


def face(x: float, y: float, side: float, score: float = 0.99) -> Detection:
    return Detection(BBox(x - side / 2, y - side / 2, x + side / 2, y + side / 2), score)


def report(score: float = 95.0, *reasons: str) -> QualityReport:
    return QualityReport(score=score, factors={}, measurements={}, reasons=tuple(reasons))


def test_central_subject_beats_larger_bystander_cut_off_at_the_edge() -> None:
    subject = face(500, 400, 200)
    bystander = face(960, 400, 220)  # larger, but touching the right border
    ranked = rank_faces([bystander, subject], [report(), report()], W, H)
    assert ranked[0].detection == subject and ranked[0].index == 1
    assert competing_faces(ranked) == []


def test_small_or_blurred_or_doubtful_faces_behind_do_not_compete() -> None:
    subject = face(450, 400, 200)
    small = face(650, 380, 120)
    blurred = face(600, 400, 190)
    doubtful = face(560, 420, 200, score=0.6)
    for other, quality in ((small, report()), (blurred, report(40.0, "blurred"))):
        ranked = rank_faces([subject, other], [report(), quality], W, H)
        assert ranked[0].detection == subject
        assert competing_faces(ranked) == []
    ranked = rank_faces([doubtful, subject], [report(), report()], W, H)
    assert ranked[0].detection == subject and competing_faces(ranked) == []


def test_two_people_side_by_side_compete() -> None:
    left, right = face(350, 400, 200), face(650, 400, 195)
    ranked = rank_faces([left, right], [report(), report()], W, H)
    assert ranked[0].detection == left  # the larger of two equally central faces
    competing = competing_faces(ranked)
    assert [c.detection for c in competing] == [right]


def test_close_up_filling_the_frame_is_not_penalised_for_touching_the_border() -> None:
    close_up = Detection(BBox(0, 0, W, H), 0.99)
    other = face(900, 100, 150)
    ranked = rank_faces([other, close_up], [report(), report()], W, H)
    assert ranked[0].detection == close_up and ranked[0].centrality == 1.0


def test_no_faces_and_one_face() -> None:
    assert rank_faces([], [], W, H) == []
    ranked = rank_faces([face(500, 400, 100)], [report()], W, H)
    assert len(ranked) == 1 and competing_faces(ranked) == []
