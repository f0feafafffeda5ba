"""Calibrated FMR curves and open-set thresholds, on synthetic impostor distances of known law."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from facerec.inference.calibration import (
    CALIBRATIONS_FILE,
    Calibration,
    comparison_fmr,
    dump_calibrations,
    expected_fpir,
    fit_calibration,
    load_calibrations,
    threshold_for_fpir,
)


def gaussian_impostors(n: int, seed: int = 0) -> np.ndarray:
    """dlib-like: impostor L2 distances around 0.87."""
    return np.random.default_rng(seed).normal(0.87, 0.07, n)


def laplace_impostors(n: int, seed: int = 0) -> np.ndarray:
    """Lower tail exactly exponential: P(D < d) = exp((d - 0.75) / 0.04) / 2 below 0.75."""
    return np.random.default_rng(seed).laplace(0.75, 0.04, n)


def fitted(sample: np.ndarray) -> Calibration:
    return fit_calibration(sample, metric="cosine", identities=100, source="synthetic")


@pytest.fixture(scope="module")
def gaussian() -> tuple[np.ndarray, Calibration]:
    sample = gaussian_impostors(20_000)
    return sample, fitted(sample)


def test_body_matches_the_empirical_rate(gaussian: tuple[np.ndarray, Calibration]) -> None:
    sample, calibration = gaussian
    ordered = np.sort(sample)
    for q in (0.1, 0.2, 0.35, 0.5, 0.8, 0.95):
        d = float(np.quantile(sample, q))
        empirical = np.searchsorted(ordered, d) / sample.size
        assert calibration.fmr(d) == pytest.approx(empirical, rel=0.03)
    assert len(calibration.knot_distances) <= 40
    assert calibration.fmr(float(sample.max()) + 1.0) == 1.0


def test_tail_is_monotone_continuous_and_close_to_the_data(
    gaussian: tuple[np.ndarray, Calibration],
) -> None:
    sample, calibration = gaussian
    u = calibration.tail_start
    assert calibration.tail_fmr == pytest.approx(0.1, abs=1e-3)
    assert calibration.fmr(u - 1e-12) == pytest.approx(calibration.fmr(u), rel=1e-9)
    grid = np.linspace(float(sample.min()) - 0.3, float(sample.max()) + 0.1, 2000)
    values = [calibration.fmr(float(d)) for d in grid]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b >= a for a, b in itertools.pairwise(values))
    # Within the measured tail the exponential stays within a factor of the data...
    d = float(np.quantile(sample, 0.01))
    assert 0.5 < calibration.fmr(d) / 0.01 < 2.0
    # ...and, being heavier than the Gaussian's, lies above it when extrapolating.
    from statistics import NormalDist

    deep = 0.87 - 5 * 0.07
    assert calibration.fmr(deep) > NormalDist(0.87, 0.07).cdf(deep)


def test_inverse_round_trips(gaussian: tuple[np.ndarray, Calibration]) -> None:
    _, calibration = gaussian
    for fmr in np.geomspace(1e-9, 0.999, 60):
        d = calibration.distance_at_fmr(float(fmr))
        assert calibration.fmr(d) == pytest.approx(float(fmr), rel=1e-9)
    for d in np.linspace(0.2, 1.1, 50):
        f = calibration.fmr(float(d))
        assert calibration.distance_at_fmr(f) == pytest.approx(float(d), abs=1e-9)
    with pytest.raises(ValueError):
        calibration.distance_at_fmr(0.0)


def test_extrapolated_below_one_pair(gaussian: tuple[np.ndarray, Calibration]) -> None:
    _, calibration = gaussian
    assert calibration.min_measured_fmr == pytest.approx(1 / 20_000)
    assert calibration.is_extrapolated(1e-6)
    assert not calibration.is_extrapolated(1e-3)


def test_threshold_and_expected_fpir_round_trip(gaussian: tuple[np.ndarray, Calibration]) -> None:
    _, calibration = gaussian
    previous = math.inf
    for n in (1, 10, 1_000, 100_000, 10_000_000):
        t = threshold_for_fpir(calibration, 0.01, n)
        assert expected_fpir(calibration, t, n) == pytest.approx(0.01, rel=1e-6)
        assert t < previous  # a larger gallery needs a stricter threshold
        previous = t
    assert comparison_fmr(0.01, 1000) == pytest.approx(0.01 / 1000, rel=0.01)
    assert comparison_fmr(1e-3, 10**9) > 0.0  # log1p/expm1: no underflow to 0


def test_empty_gallery_and_ceiling(gaussian: tuple[np.ndarray, Calibration]) -> None:
    _, calibration = gaussian
    assert expected_fpir(calibration, 10.0, 0) == 0.0
    assert threshold_for_fpir(calibration, 0.01, 0) == threshold_for_fpir(calibration, 0.01, 1)
    assert threshold_for_fpir(calibration, 0.5, 1, ceiling=0.6) == 0.6
    assert expected_fpir(calibration, 10.0, 5) == 1.0
    with pytest.raises(ValueError):
        threshold_for_fpir(calibration, 0.0, 10)


def named_rate(rng: np.random.Generator, draw: str, threshold: float, n: int) -> float:
    strangers = 4000
    scores = (
        rng.laplace(0.75, 0.04, (strangers, n))
        if draw == "laplace"
        else rng.normal(0.87, 0.07, (strangers, n))
    )
    return float(np.mean(scores.min(axis=1) < threshold))


@pytest.mark.parametrize("n", [50, 400])
def test_open_set_rule_names_strangers_at_the_target_rate(n: int) -> None:
    """Fresh strangers against a gallery of n faces: the exponential tail is this law's own, so
    the realised rate matches the target (the n=400 case is an extrapolation)."""
    calibration = fitted(laplace_impostors(5_000, seed=1))
    target = 0.05
    t = threshold_for_fpir(calibration, target, n)
    assert calibration.is_extrapolated(comparison_fmr(target, n)) == (n == 400)
    rate = named_rate(np.random.default_rng(2), "laplace", t, n)
    assert rate == pytest.approx(target, rel=0.3)


def test_open_set_rule_errs_towards_unknown_on_a_lighter_tail() -> None:
    calibration = fitted(gaussian_impostors(5_000, seed=3))
    t = threshold_for_fpir(calibration, 0.05, 200)
    rate = named_rate(np.random.default_rng(4), "gaussian", t, 200)
    assert rate < 0.05


def test_json_round_trip(tmp_path: Path, gaussian: tuple[np.ndarray, Calibration]) -> None:
    _, calibration = gaussian
    assert Calibration.from_dict(json.loads(json.dumps(calibration.to_dict()))) == calibration
    path = tmp_path / "calibrations.json"
    dump_calibrations({"a": calibration, "b": fitted(laplace_impostors(100))}, path)
    loaded = load_calibrations(path)
    assert set(loaded) == {"a", "b"}
    assert loaded["a"] == calibration


def test_fit_refuses_too_few_pairs() -> None:
    with pytest.raises(ValueError):
        fitted(np.linspace(0.5, 1.0, 5))


@pytest.mark.skipif(not CALIBRATIONS_FILE.is_file(), reason="no packaged calibrations yet")
def test_packaged_calibrations_load() -> None:
    names = set(json.loads(CALIBRATIONS_FILE.read_text(encoding="utf-8"))["models"])
    calibrations = load_calibrations()
    assert set(calibrations) == names
    for calibration in calibrations.values():
        t = calibration.distance_at_fmr(1e-3)
        assert calibration.fmr(t) == pytest.approx(1e-3)
