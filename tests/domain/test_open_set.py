"""The open-set rule: templates, operating points that follow the gallery's size, decisions."""

from __future__ import annotations

import numpy as np
import pytest

from facerec.domain.open_set import (
    Candidate,
    TemplateFace,
    decide,
    fused_distance,
    operating_point,
    rank,
)
from facerec.inference.calibration import expected_fpir
from tests.domain.fakes import FakeEmbedder, synthetic_calibration


def candidate(person: str, distance: float, embedder: FakeEmbedder) -> Candidate:
    return Candidate(person, None, distance, distance, 1, embedder.similarity(distance))


def test_fused_distance_uses_every_face_and_resists_one_outlier() -> None:
    assert fused_distance([TemplateFace(0.4, 90.0)]) == pytest.approx(0.4)
    # One face close to a stranger among several far ones: the template stays far.
    faces = [TemplateFace(0.5, 90.0), TemplateFace(1.1, 90.0), TemplateFace(1.2, 90.0)]
    assert fused_distance(faces) == pytest.approx(0.5 * (0.5 + (0.5 + 1.1 + 1.2) / 3))
    assert fused_distance(faces) >= min(f.distance for f in faces)
    # Quality weighs the mean: a poor face counts less.
    weighted = fused_distance([TemplateFace(0.3, 100.0), TemplateFace(0.9, 10.0)])
    assert weighted < fused_distance([TemplateFace(0.3, 100.0), TemplateFace(0.9, 100.0)])
    with pytest.raises(ValueError):
        fused_distance([])


def test_threshold_tightens_with_gallery_size_and_keeps_its_promise() -> None:
    embedder = FakeEmbedder(synthetic_calibration())
    points = [
        operating_point(
            embedder, gallery_size=n, comparisons=n, target_fpir=0.01, similarity_threshold=None
        )
        for n in (1, 100, 10_000, 1_000_000)
    ]
    thresholds = [p.distance_threshold for p in points]
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[0] > thresholds[-1]
    for point in points:
        assert point.rule == "target_fpir" and point.target_fpir == 0.01
        assert point.distance_threshold <= embedder.distance_threshold
        assert point.expected_fpir is not None
        if not point.capped_at_verification:
            assert point.expected_fpir == pytest.approx(0.01, rel=1e-3)
    assert points[-1].extrapolated and not points[0].extrapolated
    # The promise, simulated: strangers against a gallery of n faces, impostor distances drawn
    # from the distribution the calibration was fitted on.
    rng = np.random.default_rng(3)
    n = 1_000
    point = operating_point(
        embedder, gallery_size=n, comparisons=n, target_fpir=0.05, similarity_threshold=None
    )
    nearest = rng.normal(1.2, 0.12, (2_000, n)).min(axis=1)
    named = float(np.mean(nearest <= point.distance_threshold))
    assert named <= 0.05 * 1.5  # the exponential tail errs towards "unknown"


def test_fixed_similarity_threshold_overrides_and_reports_its_fpir() -> None:
    calibration = synthetic_calibration()
    embedder = FakeEmbedder(calibration)
    point = operating_point(
        embedder, gallery_size=500, comparisons=800, target_fpir=0.01, similarity_threshold=0.5
    )
    assert point.rule == "similarity_threshold" and point.target_fpir is None
    assert point.distance_threshold == pytest.approx(embedder.distance_threshold)
    assert point.expected_fpir == pytest.approx(expected_fpir(calibration, 0.9, 800))
    assert point.comparisons == 800 and point.gallery_size == 500


def test_without_calibration_the_verification_threshold_is_used_and_said() -> None:
    embedder = FakeEmbedder(calibration=None)
    point = operating_point(
        embedder, gallery_size=10, comparisons=10, target_fpir=None, similarity_threshold=None
    )
    assert point.distance_threshold == embedder.distance_threshold
    assert point.expected_fpir is None and point.calibration is None
    assert point.target_fpir == 0.01  # the default target, reported


def test_decisions_threshold_and_margin() -> None:
    embedder = FakeEmbedder(synthetic_calibration())
    point = operating_point(
        embedder, gallery_size=2, comparisons=2, target_fpir=0.01, similarity_threshold=None
    )
    t = point.distance_threshold
    assert decide([], point).known is False
    alone = decide(rank([candidate("a", t - 0.2, embedder)]), point)
    assert alone.known and alone.decided_by == "threshold" and alone.margin is None
    far = decide(rank([candidate("a", t + 0.01, embedder)]), point)
    assert not far.known and far.decided_by == "threshold"
    # Runner-up far below the threshold: a small margin does not matter.
    clear = decide(
        rank([candidate("a", t - 0.2, embedder), candidate("b", t + 0.5, embedder)]), point
    )
    assert clear.known
    # Two people both clearing the threshold almost equally: ambiguous → unknown by margin.
    tie = rank([candidate("b", t - 0.101, embedder), candidate("a", t - 0.1, embedder)])
    ambiguous = decide(tie, point)
    assert not ambiguous.known and ambiguous.decided_by == "margin"
    assert ambiguous.margin is not None and ambiguous.margin < point.min_margin
    # A clear lead over a runner-up that also clears: known.
    lead = decide(
        rank([candidate("a", t - 0.4, embedder), candidate("b", t - 0.01, embedder)]), point
    )
    assert lead.known and lead.margin is not None and lead.margin >= point.min_margin
