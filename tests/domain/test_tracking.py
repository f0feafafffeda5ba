"""The stream tracker and the identity voting, as pure functions of their inputs."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.domain.tracking import (
    IdentityVotes,
    Observation,
    Tracker,
    TrackerRules,
    Vote,
    VotingRules,
    iou,
    vote_of,
)
from facerec.values import BBox


def face(
    x: float,
    y: float,
    size: float = 100.0,
    *,
    person: str | None = "ada",
    similarity: float = 0.9,
    quality: float = 90.0,
    usable: bool = True,
    landmarks: bool = True,
) -> Observation:
    marks = None
    if landmarks:
        offsets = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])
        marks = (np.array([x, y]) + offsets * size).astype(np.float32)
    return Observation(
        bbox=BBox(x, y, x + size, y + size),
        quality=quality,
        landmarks=marks,
        usable=usable,
        person_id=person,
        similarity=similarity,
    )


def test_iou() -> None:
    a = BBox(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, BBox(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(a, BBox(20, 20, 30, 30)) == 0.0


def test_a_moving_face_keeps_its_track_and_a_new_face_gets_another() -> None:
    tracker = Tracker()
    first = tracker.update([face(0, 0)], now=0.0).tracks[0]
    second = tracker.update([face(20, 0), face(600, 400)], now=1.0).tracks[1]
    assert second.id != first.id
    for step in range(2, 10):
        update = tracker.update([face(step * 20, 0), face(600, 400)], now=float(step))
        assert [t.id for t in update.tracks] == [first.id, second.id]
    assert len(tracker.tracks) == 2


def test_two_faces_passing_each_other_keep_their_tracks() -> None:
    tracker = Tracker()
    start = tracker.update([face(0, 0, person="a"), face(400, 0, person="b")], now=0.0)
    ids = [t.id for t in start.tracks]
    for step in range(1, 8):  # they move towards each other, 40 px a frame, never overlapping
        update = tracker.update(
            [face(step * 40, 0, person="a"), face(400 - step * 40, 0, person="b")],
            now=float(step),
        )
        assert [t.id for t in update.tracks] == ids


def test_fast_motion_falls_back_to_landmark_distance() -> None:
    tracker = Tracker()
    first = tracker.update([face(0, 0)], now=0.0).tracks[0]
    jumped = face(80, 10)  # IoU with the last box is ~0.1: below iou_min
    assert iou(first.bbox, jumped.bbox) < TrackerRules().iou_min
    assert tracker.update([jumped], now=1.0).tracks[0].id == first.id
    far = face(800, 10)  # 7 face sizes away: another face
    assert tracker.update([far], now=2.0).tracks[0].id != first.id


def test_without_landmarks_the_box_centres_are_used() -> None:
    tracker = Tracker()
    first = tracker.update([face(0, 0, landmarks=False)], now=0.0).tracks[0]
    assert tracker.update([face(70, 0, landmarks=False)], now=1.0).tracks[0].id == first.id


def test_a_face_that_doubles_in_size_at_once_is_another_track() -> None:
    tracker = Tracker()
    first = tracker.update([face(0, 0, 100)], now=0.0).tracks[0]
    assert tracker.update([face(0, 0, 260)], now=1.0).tracks[0].id != first.id


def test_tracks_end_after_max_missed_frames_and_survive_a_short_gap() -> None:
    tracker = Tracker(TrackerRules(max_missed=2))
    first = tracker.update([face(0, 0)], now=0.0).tracks[0]
    assert tracker.update([], now=1.0).ended == []
    assert tracker.update([], now=2.0).ended == []
    assert tracker.update([face(30, 0)], now=3.0).tracks[0].id == first.id  # back in view
    for t in (4.0, 5.0):
        assert tracker.update([], now=t).ended == []
    ended = tracker.update([], now=6.0).ended
    assert [t.id for t in ended] == [first.id]
    assert ended[0].first_seen == 0.0 and ended[0].last_seen == 3.0 and ended[0].hits == 2
    assert tracker.tracks == {}
    assert tracker.update([face(0, 0)], now=7.0).tracks[0].id != first.id


def test_end_all() -> None:
    tracker = Tracker()
    tracker.update([face(0, 0), face(500, 0)], now=0.0)
    assert len(tracker.end_all()) == 2 and tracker.tracks == {}


# --- voting -------------------------------------------------------------------------------------


def test_vote_weights() -> None:
    rules = VotingRules()
    vote = vote_of(face(0, 0, quality=80, similarity=0.9), rules)
    assert vote is not None and vote.key == "ada" and vote.weight == pytest.approx(0.72)
    unknown = vote_of(face(0, 0, person=None, quality=100, similarity=0.3), rules)
    assert unknown is not None and unknown.key == "" and unknown.weight == pytest.approx(0.7)
    assert vote_of(face(0, 0, usable=False), rules) is None
    poor = vote_of(face(0, 0, quality=0.0, similarity=1.0), rules)
    assert poor is not None and poor.weight == pytest.approx(rules.min_quality)


def test_an_identity_is_decided_once_enough_mass_agrees() -> None:
    votes = IdentityVotes(VotingRules(min_mass=1.5))
    assert votes.add(vote(face(0, 0))) is False  # 0.81: not enough yet
    assert not votes.decision().decided and votes.decision().person_id is None
    assert votes.add(vote(face(0, 0))) is True  # 1.62
    decision = votes.decision()
    assert decision.decided and decision.person_id == "ada" and not decision.unknown
    assert decision.mass == pytest.approx(1.62) and decision.total == pytest.approx(1.62)
    assert decision.frames == 2 and decision.similarity == pytest.approx(0.9)


def test_one_bad_frame_does_not_flip_a_decided_track() -> None:
    votes = IdentityVotes(VotingRules())
    for _ in range(4):
        votes.add(vote(face(0, 0)))
    assert votes.decision().person_id == "ada"
    assert votes.add(vote(face(0, 0, person="bob", similarity=0.99, quality=100))) is False
    decision = votes.decision()
    assert decision.person_id == "ada"
    assert decision.mass < decision.total  # the bad vote counts in the total


def test_a_bad_first_frame_is_outvoted_before_deciding() -> None:
    votes = IdentityVotes(VotingRules())
    votes.add(vote(face(0, 0, person="bob")))
    votes.add(vote(face(0, 0)))
    assert not votes.decision().decided  # 50/50: below min_share
    votes.add(vote(face(0, 0)))
    assert votes.decision().person_id == "ada"


def test_a_sustained_change_switches_the_decision() -> None:
    votes = IdentityVotes(VotingRules(window=10, switch_ratio=2.0))
    for _ in range(3):
        votes.add(vote(face(0, 0)))
    changed = [votes.add(vote(face(0, 0, person="bob"))) for _ in range(10)]
    assert votes.decision().person_id == "bob"
    assert changed.count(True) == 1


def test_a_stranger_is_decided_unknown() -> None:
    votes = IdentityVotes(VotingRules())
    for _ in range(3):
        votes.add(vote(face(0, 0, person=None, similarity=0.2)))
    decision = votes.decision()
    assert decision.decided and decision.unknown and decision.person_id is None
    assert decision.similarity is None


def test_the_window_bounds_memory() -> None:
    votes = IdentityVotes(VotingRules(window=5))
    for _ in range(50):
        votes.add(vote(face(0, 0)))
    assert votes.decision().frames == 5


def test_tracker_reports_decisions_once() -> None:
    tracker = Tracker()
    decided = [len(tracker.update([face(i * 5, 0)], now=float(i)).decided) for i in range(6)]
    assert decided == [0, 1, 0, 0, 0, 0]
    unusable = Tracker()
    for i in range(6):
        assert unusable.update([face(0, 0, usable=False)], now=float(i)).decided == []


def vote(observation: Observation) -> Vote:
    found = vote_of(observation, VotingRules())
    assert found is not None
    return found
