"""Calibrated false-match rates of an embedder, and open-set thresholds derived from them.

A :class:`Calibration` maps a distance ``d`` to ``FMR(d)``: the fraction of impostor pairs (two
faces of different people) closer than ``d``. It is fitted on measured impostor distances in two
parts:

- the body, ``FMR >= p_u``: at most ~40 knots ``(d_k, FMR_k)`` read off the empirical
  distribution (each knot is the midpoint between two order statistics, so its FMR is an exact
  count). Between knots ``log FMR`` is interpolated linearly in ``d``; above the last knot FMR is
  1.
- the tail, ``d < u``: peaks over threshold on the lowest ``tail_fraction`` (default 0.1) of the
  impostor distances. With ``p_u = FMR(u)`` and ``β`` the mean excess ``u − d_i`` of the impostor
  distances below ``u``::

      FMR(d) = p_u · exp(−(u − d) / β)        for d < u

  i.e. the excesses below ``u`` follow a generalised Pareto distribution of shape 0 (an
  exponential), whose maximum-likelihood scale is the mean excess. The curve is continuous at
  ``u`` and strictly increasing.

Why an exponential tail: it decays more slowly than a Gaussian tail (``exp(−x)`` against
``exp(−x²)``), so when a rate below what the data can show is asked for, the threshold it gives
is stricter than a Gaussian fit would give: an extrapolated threshold errs towards "unknown"
(fewer strangers named, more genuine users missed), never towards naming strangers. Rates below
:attr:`Calibration.min_measured_fmr` (one impostor pair in all those measured) are
*extrapolations* of this model, not measurements: :meth:`Calibration.is_extrapolated` says so, and
callers should report it.

Open set: a stranger searched against a gallery meets ``n`` comparisons; if each is a false match
with probability ``FMR(t)`` independently, the stranger is named with probability
``FPIR = 1 − (1 − FMR(t))^n``. Comparisons of one probe are positively correlated in practice,
which makes the real FPIR lower than this, so the rule is conservative.
:func:`threshold_for_fpir` inverts it: ``FMR(t) = 1 − (1 − target)^(1/n) ≈ target / n``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facerec.values import Metric

CALIBRATIONS_FILE = Path(__file__).resolve().parent / "calibrations.json"
MAX_KNOTS = 40
MIN_IMPOSTOR_PAIRS = 20
MIN_TAIL_PAIRS = 5
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """FMR as a function of distance for one embedder (see the module docstring)."""

    metric: Metric
    knot_distances: tuple[float, ...]  # ascending; the first is the tail start u
    knot_fmrs: tuple[float, ...]  # strictly ascending, in (0, 1]; the first is p_u
    tail_scale: float  # β, the mean excess below u
    tail_fraction: float
    impostor_pairs: int
    identities: int
    source: str  # data set and the command that fitted it
    space: str = ""  # embedding space (model@version) the distances came from, when known

    def __post_init__(self) -> None:
        if len(self.knot_distances) != len(self.knot_fmrs) or not self.knot_distances:
            raise ValueError("knot_distances and knot_fmrs must be non-empty and of equal length")
        if any(b <= a for a, b in itertools.pairwise(self.knot_distances)):
            raise ValueError("knot_distances must be strictly ascending")
        if any(b <= a for a, b in itertools.pairwise(self.knot_fmrs)):
            raise ValueError("knot_fmrs must be strictly ascending")
        if not 0.0 < self.knot_fmrs[0] <= self.knot_fmrs[-1] <= 1.0:
            raise ValueError("knot_fmrs must lie in (0, 1]")
        if not self.tail_scale > 0.0:
            raise ValueError("tail_scale must be positive")

    @property
    def tail_start(self) -> float:
        """u: below it FMR follows the exponential tail."""
        return self.knot_distances[0]

    @property
    def tail_fmr(self) -> float:
        """p_u = FMR(u)."""
        return self.knot_fmrs[0]

    @property
    def min_measured_fmr(self) -> float:
        """The smallest rate the impostor pairs can show: one pair in all of them. Smaller rates
        come from the tail model alone (between this and ``tail_fmr`` the model is fitted on, and
        checked against, measured pairs)."""
        return 1.0 / self.impostor_pairs

    def is_extrapolated(self, fmr: float) -> bool:
        return fmr < self.min_measured_fmr

    def fmr(self, distance: float) -> float:
        """False-match rate of the rule ``distance < d``: monotone non-decreasing, in [0, 1]."""
        if math.isnan(distance):
            raise ValueError("distance is NaN")
        xs, ys = self.knot_distances, self.knot_fmrs
        if distance < xs[0]:
            return self.tail_fmr * math.exp(-(xs[0] - distance) / self.tail_scale)
        if distance >= xs[-1]:
            return ys[-1]
        k = bisect.bisect_right(xs, distance) - 1  # xs[k] <= distance < xs[k + 1]
        w = (distance - xs[k]) / (xs[k + 1] - xs[k])
        return math.exp((1.0 - w) * math.log(ys[k]) + w * math.log(ys[k + 1]))

    def distance_at_fmr(self, fmr: float) -> float:
        """The distance ``d`` with ``FMR(d) = fmr`` (the inverse of :meth:`fmr`); ``fmr`` at or
        above the last knot's rate gives the last knot."""
        if not fmr > 0.0:
            raise ValueError("fmr must be positive")
        xs, ys = self.knot_distances, self.knot_fmrs
        if fmr < ys[0]:
            return xs[0] + self.tail_scale * math.log(fmr / ys[0])
        if fmr >= ys[-1]:
            return xs[-1]
        k = bisect.bisect_right(ys, fmr) - 1  # ys[k] <= fmr < ys[k + 1]
        w = (math.log(fmr) - math.log(ys[k])) / (math.log(ys[k + 1]) - math.log(ys[k]))
        return xs[k] + w * (xs[k + 1] - xs[k])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["knot_distances"] = list(self.knot_distances)
        data["knot_fmrs"] = list(self.knot_fmrs)
        return {"schema": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise ValueError(f"unknown calibration schema {schema!r}")
        metric = data["metric"]
        if metric not in ("l2", "cosine"):
            raise ValueError(f"unknown metric {metric!r}")
        return cls(
            metric=metric,
            knot_distances=tuple(float(x) for x in data["knot_distances"]),
            knot_fmrs=tuple(float(y) for y in data["knot_fmrs"]),
            tail_scale=float(data["tail_scale"]),
            tail_fraction=float(data["tail_fraction"]),
            impostor_pairs=int(data["impostor_pairs"]),
            identities=int(data["identities"]),
            source=str(data["source"]),
            space=str(data.get("space", "")),
        )


def fit_calibration(
    impostor_distances: Sequence[float] | np.ndarray[Any, Any],
    *,
    metric: Metric,
    identities: int,
    source: str,
    tail_fraction: float = 0.1,
    space: str = "",
) -> Calibration:
    """Fit the body knots and the exponential tail on distances of different-person pairs."""
    d = np.sort(np.asarray(impostor_distances, dtype=np.float64).ravel())
    if not np.all(np.isfinite(d)):
        raise ValueError("impostor distances must be finite")
    n = int(d.size)
    if n < MIN_IMPOSTOR_PAIRS:
        raise ValueError(f"need at least {MIN_IMPOSTOR_PAIRS} impostor distances, got {n}")
    if not 0.0 < tail_fraction < 1.0:
        raise ValueError("tail_fraction must be in (0, 1)")
    # k distances lie below the tail start u: the midpoint between the k-th and (k+1)-th.
    k = min(n - 1, max(MIN_TAIL_PAIRS, math.ceil(tail_fraction * n)))
    counts = np.unique(np.geomspace(k, n, MAX_KNOTS).round().astype(np.int64))
    distances: list[float] = []
    fmrs: list[float] = []
    for count in counts:
        c = int(count)
        x = float(d[-1]) + 1e-9 if c >= n else float((d[c - 1] + d[c]) / 2.0)
        if distances and x <= distances[-1]:  # tied distances: keep the higher count
            fmrs[-1] = c / n
            continue
        distances.append(x)
        fmrs.append(c / n)
    u = distances[0]
    excess = u - d[d < u]
    scale = float(excess.mean()) if excess.size else 0.0
    if not scale > 0.0:  # all tail distances tied: fall back to the spread of the whole set
        scale = max(float(d[-1] - d[0]), 1e-6) / max(1.0, math.log(n))
    return Calibration(
        metric=metric,
        knot_distances=tuple(distances),
        knot_fmrs=tuple(fmrs),
        tail_scale=scale,
        tail_fraction=tail_fraction,
        impostor_pairs=n,
        identities=identities,
        source=source,
        space=space,
    )


def comparison_fmr(target_fpir: float, comparisons: int) -> float:
    """Per-comparison FMR giving ``target_fpir`` over ``comparisons``: 1 − (1 − f)^(1/n)."""
    if not 0.0 < target_fpir < 1.0:
        raise ValueError("target_fpir must be in (0, 1)")
    n = max(1, comparisons)  # no gallery: nothing can match, any threshold meets the target
    return -math.expm1(math.log1p(-target_fpir) / n)


def threshold_for_fpir(
    calibration: Calibration,
    target_fpir: float,
    comparisons: int,
    *,
    ceiling: float | None = None,
) -> float:
    """The distance threshold at which a stranger meeting ``comparisons`` faces is named with
    probability ``target_fpir``; never above ``ceiling`` (the model's 1:1 threshold) if given.
    ``comparisons <= 0`` is treated as 1: with no gallery nothing is named whatever the threshold.
    """
    threshold = calibration.distance_at_fmr(comparison_fmr(target_fpir, comparisons))
    return threshold if ceiling is None else min(threshold, ceiling)


def expected_fpir(calibration: Calibration, distance_threshold: float, comparisons: int) -> float:
    """1 − (1 − FMR(t))^n: how often a stranger is named; 0 for an empty gallery."""
    if comparisons <= 0:
        return 0.0
    fmr = calibration.fmr(distance_threshold)
    if fmr >= 1.0:
        return 1.0
    return -math.expm1(comparisons * math.log1p(-fmr))


def load_calibrations(path: Path | None = None) -> dict[str, Calibration]:
    """Calibrations by model name from ``path`` (default: the packaged ``calibrations.json``,
    read once; an absent packaged file gives no calibrations)."""
    if path is None:
        return dict(_packaged())
    return _read(path)


@functools.cache
def _packaged() -> Mapping[str, Calibration]:
    return _read(CALIBRATIONS_FILE) if CALIBRATIONS_FILE.is_file() else {}


def _read(path: Path) -> dict[str, Calibration]:
    data = json.loads(path.read_text(encoding="utf-8"))
    models = data.get("models", data)
    return {name: Calibration.from_dict(entry) for name, entry in models.items()}


def dump_calibrations(calibrations: Mapping[str, Calibration], path: Path) -> None:
    """Write calibrations by model name (the format :func:`load_calibrations` reads)."""
    body = {
        "schema": SCHEMA_VERSION,
        "models": {name: c.to_dict() for name, c in sorted(calibrations.items())},
    }
    text = json.dumps(body, indent=2)
    # One line per list of numbers: the knots stay readable as a table of two rows.
    text = re.sub(
        r"\[\s+([-+0-9.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text
    )
    path.write_text(text + "\n", encoding="utf-8")
