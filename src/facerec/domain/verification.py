"""1:1 verification: are the subjects of two photos the same person?

Each photo's subject is its most prominent face (other people in it never make it fail); the
decision is the embedder's calibrated 1:1 threshold, and the false-match rate at the observed
distance is reported when the model has a calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

from facerec.domain.probes import Analysis, ProcessingMode
from facerec.domain.queries import QueryRunner
from facerec.domain.timing import StageTimer


@dataclass(frozen=True)
class Verification:
    same: bool
    similarity: float
    distance: float
    threshold: float
    confidence: float
    embedder: str
    analyses: tuple[Analysis, Analysis]
    fmr: float | None  # false-match rate at this distance (None: no calibration)


class VerificationService:
    def __init__(self, queries: QueryRunner) -> None:
        self.queries = queries

    async def compare(
        self,
        *,
        first: bytes,
        second: bytes,
        model: str | None,
        mode: ProcessingMode,
        timer: StageTimer,
    ) -> Verification:
        options = self.queries.subject_options(
            embedder=model, mode=mode, enrollment=False, check_liveness=False
        )
        a = await self.queries.query(first, options, timer)
        b = await self.queries.query(second, options, timer)
        name = options.embedder or ""
        embedder = self.queries.embedder(name)
        distance = embedder.distance(a.subject.vector, b.subject.vector)
        similarity = embedder.similarity(distance)
        same = distance <= embedder.distance_threshold
        calibration = embedder.calibration
        return Verification(
            same=same,
            similarity=similarity,
            distance=distance,
            threshold=embedder.distance_threshold,
            confidence=similarity if same else 1.0 - similarity,
            embedder=name,
            analyses=(a, b),
            fmr=calibration.fmr(distance) if calibration is not None else None,
        )
