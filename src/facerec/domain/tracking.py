"""Faces followed across the frames of a stream, and the identity each track earns by voting.

Pure: no I/O, no clock of its own (the caller passes the time), so every rule is unit-tested.

**Tracking.** Each processed frame's faces are matched to the live tracks first by box overlap
(IoU ≥ ``iou_min``, one-to-one, the assignment maximising the total IoU); faces and tracks left
over are then matched by distance: the mean distance of the 5 landmarks (the box centres when
either side has none), in units of the track's face size, at most ``max_distance`` face sizes
per frame the track has been missing, and a size change of at most ``max_scale_change``×. That
fallback keeps a track through fast motion or dropped frames, when boxes no longer overlap. A
face matched to no track starts a new one; a track unmatched for more than ``max_missed``
processed frames ends.

**Voting.** Every usable face of a frame votes for the identity the frame gave it (a person, or
unknown), weighted by the face's quality and by how sure the frame was: ``q · s`` for a person
(``q`` = quality / 100, ``s`` = its similarity) and ``q · (1 − s)`` for unknown (``s`` = the best
candidate's similarity, 0 without one). A track keeps its last ``window`` votes. It is decided
once their total mass reaches ``min_mass`` and the leading identity holds ``min_share`` of it;
afterwards another identity replaces the decision only when it holds ``min_share`` *and*
``switch_ratio`` times the mass of the decided one, so one bad frame never flips a track.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from facerec.domain.assignment import optimal_assignment
from facerec.values import BBox

UNKNOWN_KEY = ""  # the vote key of "unknown" (person keys are never empty)


@dataclass(frozen=True)
class TrackerRules:
    iou_min: float = 0.3
    max_distance: float = 1.0  # face sizes per missed frame, for the distance fallback
    max_scale_change: float = 2.0
    max_missed: int = 5


@dataclass(frozen=True)
class VotingRules:
    min_mass: float = 1.5
    min_share: float = 0.6
    switch_ratio: float = 2.0
    window: int = 30
    min_quality: float = 0.05  # floor of the quality factor, so a poor face still counts a bit


@dataclass(frozen=True)
class Observation:
    """One face of one frame, as the frame's identification left it."""

    bbox: BBox
    quality: float  # 0-100
    landmarks: NDArray[np.float32] | None = field(default=None, compare=False)
    usable: bool = True  # whether the face was tried for an identity (no vote otherwise)
    person_id: str | None = None  # the frame's identity (None: unknown)
    similarity: float | None = None  # of person_id; when unknown, of the best candidate


@dataclass(frozen=True)
class Vote:
    key: str  # person id, or UNKNOWN_KEY
    weight: float
    similarity: float | None


@dataclass(frozen=True)
class Decision:
    """A track's identity: ``decided`` False while votes are still gathered."""

    decided: bool
    person_id: str | None  # None: unknown (when decided) or not decided yet
    similarity: float | None  # mean similarity of the leading identity's votes
    mass: float  # the leading identity's vote mass
    total: float  # every vote's mass in the window
    frames: int  # votes in the window

    @property
    def unknown(self) -> bool:
        return self.decided and self.person_id is None


def vote_of(observation: Observation, rules: VotingRules) -> Vote | None:
    if not observation.usable:
        return None
    q = min(1.0, max(rules.min_quality, observation.quality / 100.0))
    s = min(1.0, max(0.0, observation.similarity or 0.0))
    if observation.person_id is not None:
        return Vote(observation.person_id, q * s, observation.similarity)
    return Vote(UNKNOWN_KEY, q * (1.0 - s), observation.similarity)


class IdentityVotes:
    """The last ``window`` votes of one track and the decision they support."""

    def __init__(self, rules: VotingRules) -> None:
        self.rules = rules
        self._votes: deque[Vote] = deque(maxlen=rules.window)
        self._decided = False
        self._key = UNKNOWN_KEY

    def add(self, vote: Vote) -> bool:
        """Count ``vote``; True when the decision was made or changed by it."""
        self._votes.append(vote)
        masses = self._masses()
        total = sum(masses.values())
        if total < self.rules.min_mass or total <= 0.0:
            return False
        leader = max(masses, key=lambda key: masses[key])
        if masses[leader] / total < self.rules.min_share:
            return False
        if not self._decided:
            self._decided, self._key = True, leader
            return True
        if leader != self._key and masses[leader] >= self.rules.switch_ratio * masses.get(
            self._key, 0.0
        ):
            self._key = leader
            return True
        return False

    def _masses(self) -> dict[str, float]:
        masses: dict[str, float] = {}
        for vote in self._votes:
            masses[vote.key] = masses.get(vote.key, 0.0) + vote.weight
        return masses

    def decision(self) -> Decision:
        masses = self._masses()
        total = sum(masses.values())
        if self._decided:
            key = self._key
        elif masses:
            key = max(masses, key=lambda k: masses[k])
        else:
            key = UNKNOWN_KEY
        similarities = [
            v.similarity for v in self._votes if v.key == key and v.similarity is not None
        ]
        return Decision(
            decided=self._decided,
            person_id=(key or None) if self._decided else None,
            similarity=float(np.mean(similarities)) if similarities and key else None,
            mass=masses.get(key, 0.0),
            total=total,
            frames=len(self._votes),
        )


@dataclass
class Track:
    id: int
    bbox: BBox
    landmarks: NDArray[np.float32] | None
    first_seen: float
    last_seen: float
    votes: IdentityVotes
    hits: int = 1
    missed: int = 0

    @property
    def size(self) -> float:
        return max(1.0, float(np.sqrt(max(self.bbox.area, 1.0))))


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame did: the track of each observation (same order), the tracks whose
    identity was decided or changed by this frame, and the tracks that ended."""

    tracks: list[Track]
    decided: list[Track]
    ended: list[Track]


class Tracker:
    def __init__(
        self, rules: TrackerRules | None = None, voting: VotingRules | None = None
    ) -> None:
        self.rules = rules or TrackerRules()
        self.voting = voting or VotingRules()
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, observations: Sequence[Observation], now: float) -> TrackUpdate:
        live = list(self.tracks.values())
        matched = match(live, observations, self.rules)
        assigned: list[Track] = []
        decided: list[Track] = []
        for i, observation in enumerate(observations):
            track = matched.get(i)
            if track is None:
                track = Track(
                    id=self._next_id,
                    bbox=observation.bbox,
                    landmarks=observation.landmarks,
                    first_seen=now,
                    last_seen=now,
                    votes=IdentityVotes(self.voting),
                )
                self._next_id += 1
                self.tracks[track.id] = track
            else:
                track.bbox, track.landmarks = observation.bbox, observation.landmarks
                track.last_seen, track.missed = now, 0
                track.hits += 1
            vote = vote_of(observation, self.voting)
            if vote is not None and track.votes.add(vote):
                decided.append(track)
            assigned.append(track)
        seen = {id(t) for t in assigned}
        ended: list[Track] = []
        for track in live:
            if id(track) in seen:
                continue
            track.missed += 1
            if track.missed > self.rules.max_missed:
                ended.append(self.tracks.pop(track.id))
        return TrackUpdate(assigned, decided, ended)

    def end_all(self) -> list[Track]:
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended


def iou(a: BBox, b: BBox) -> float:
    inter = BBox(max(a.x1, b.x1), max(a.y1, b.y1), min(a.x2, b.x2), min(a.y2, b.y2)).area
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _centre(box: BBox) -> NDArray[np.float64]:
    return np.array([(box.x1 + box.x2) / 2.0, (box.y1 + box.y2) / 2.0])


def distance(track: Track, observation: Observation) -> float:
    """How far ``observation`` is from ``track``, in the track's face sizes."""
    if track.landmarks is not None and observation.landmarks is not None:
        gap = np.linalg.norm(
            np.asarray(track.landmarks, np.float64) - np.asarray(observation.landmarks, np.float64),
            axis=1,
        )
        return float(gap.mean()) / track.size
    return float(np.linalg.norm(_centre(track.bbox) - _centre(observation.bbox))) / track.size


def match(
    tracks: Sequence[Track], observations: Sequence[Observation], rules: TrackerRules
) -> dict[int, Track]:
    """Observation index → its track: by IoU first, then by distance for what is left."""
    found: dict[int, Track] = {}
    if not tracks or not observations:
        return found
    overlap = np.array([[iou(t.bbox, o.bbox) for o in observations] for t in tracks])
    rows, cols = optimal_assignment(overlap, maximize=True)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if overlap[r, c] >= rules.iou_min:
            found[c] = tracks[r]
    taken = {id(t) for t in found.values()}
    rest_tracks = [t for t in tracks if id(t) not in taken]
    rest_obs = [i for i in range(len(observations)) if i not in found]
    if not rest_tracks or not rest_obs:
        return found
    far = 1e9
    cost = np.full((len(rest_tracks), len(rest_obs)), far)
    for r, track in enumerate(rest_tracks):
        for c, i in enumerate(rest_obs):
            observation = observations[i]
            scale = np.sqrt(max(observation.bbox.area, 1.0)) / track.size
            if not 1.0 / rules.max_scale_change <= scale <= rules.max_scale_change:
                continue
            gap = distance(track, observation)
            if gap <= rules.max_distance * (1 + track.missed):
                cost[r, c] = gap
    rows, cols = optimal_assignment(cost)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if cost[r, c] < far:
            found[rest_obs[c]] = rest_tracks[r]
    return found
