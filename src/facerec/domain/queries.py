"""Running the analysis core for a request: models resolved once, blocking work in the executor,
recent query results from the cache.

Every use case asks this one place for its analysis, so model names are resolved once per
request (``auto``, aliases, "not installed" errors come first, before any work) and the same
photo sent twice to recognize or compare is analysed once (the recent-results cache, keyed by the
image's SHA-256 and the models; liveness is never cached: it is judged afresh every time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, replace

from facerec.cache.base import image_result_key
from facerec.domain.analysis import Analyzer
from facerec.domain.gallery_cache import PersonCache
from facerec.domain.probes import Analysis, AnalysisOptions, FaceChoice, ProcessingMode
from facerec.domain.probes import image_digest as digest_of
from facerec.domain.timing import StageTimer
from facerec.errors import FaceRecError, ServiceUnavailableError
from facerec.executor import InferenceExecutor
from facerec.inference.base import FaceEmbedder
from facerec.inference.manager import ModelManager
from facerec.inference.types import ModelTask

SpaceCounts = Callable[[str], Awaitable[dict[str, int]]]
# A collection's active embedding space: (embedder name, space id), or None when it has none.
ActiveSpaceOf = Callable[[str], Awaitable[tuple[str, str] | None]]
# How long a collection's faces-per-space counts are reused to resolve ``auto``.
SPACE_COUNTS_TTL = 10.0
# How long a collection's active space is reused (a cut-over elsewhere is seen within this).
ACTIVE_SPACE_TTL = 2.0
# A photo larger than this is hashed (the cache key) in a worker thread: SHA-256 runs at ~1.4
# GB/s here, so a 15 MB upload would hold the event loop, and every other request, for ~10 ms.
# Below it the hash (under ~0.7 ms) costs less than the hand-over to a thread and back.
HASH_ON_LOOP_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ResolvedModels:
    detector: str
    embedder: str | None
    liveness: str | None


class QueryRunner:
    def __init__(
        self,
        *,
        models: ModelManager,
        analyzer: Analyzer,
        executor: InferenceExecutor,
        cache: PersonCache | None = None,
        liveness_default: bool = False,
        on_cache: Callable[[str], None] | None = None,
    ) -> None:
        self.models = models
        self.analyzer = analyzer
        self.executor = executor
        self.cache = cache
        self.liveness_default = liveness_default
        self._on_cache: Callable[[str], None] = on_cache or (lambda result: None)
        self.space_counts: SpaceCounts | None = None  # set once storage is open
        self._counts: dict[str, tuple[float, dict[str, int]]] = {}
        self.active_space: ActiveSpaceOf | None = None  # set once storage is open
        self._active: dict[str, tuple[float, tuple[str, str] | None]] = {}

    # --- models, resolved once per request ----------------------------------------------------

    def resolve(
        self,
        *,
        detector: str | None = "auto",
        embedder: str | None = None,
        liveness: bool = False,
    ) -> ResolvedModels:
        """Names of the models a request will use; unknown or missing models fail here, first
        the liveness model (503 ``liveness_unavailable``), then the others."""
        live = self.liveness_model() if liveness else None
        return ResolvedModels(
            detector=self.models.resolve(ModelTask.DETECTION, detector),
            embedder=self.models.resolve(ModelTask.EMBEDDING, embedder)
            if embedder is not None
            else None,
            liveness=live,
        )

    async def collection_embedder(self, collection: str, requested: str | None) -> str | None:
        """``auto`` for a collection: the embedder of its active space when installed (set at
        its first enrollment, switched by a migration's cut-over); else the installed embedder
        the collection already holds the most faces of, so that a newly installed, better model
        never leaves a gallery silently unsearchable; for a collection without faces, the
        configured ``models.default_embedder``, or the best installed (measured order) when that
        is ``auto``. Any other name is returned as it is."""
        if requested not in (None, "", "auto"):
            return requested
        active = await self.active_of(collection)
        if active is not None:
            try:
                name = self.models.resolve(ModelTask.EMBEDDING, active[0])
                if self.embedder(name).space == active[1]:
                    return name
            except FaceRecError:  # not installed (any more): fall back to the faces held
                pass
        candidates = self.models.auto_candidates(ModelTask.EMBEDDING)
        with suppress(FaceRecError):  # the configured default first (auto: the best anyway)
            default = self.models.resolve(ModelTask.EMBEDDING, "auto")
            candidates = [default, *(name for name in candidates if name != default)]
        if not candidates or self.space_counts is None:
            return requested
        counts = await self._space_counts(collection)
        held = {name: self._faces_in_space(name, counts) for name in candidates}
        best = max(candidates, key=lambda name: held[name])
        return best if held[best] > 0 else candidates[0]

    async def active_of(self, collection: str) -> tuple[str, str] | None:
        """The collection's active (embedder, space), reused for :data:`ACTIVE_SPACE_TTL`."""
        if self.active_space is None:
            return None
        now = time.monotonic()
        cached = self._active.get(collection)
        if cached is not None and now - cached[0] < ACTIVE_SPACE_TTL:
            return cached[1]
        active = await self.active_space(collection)
        if len(self._active) > 1000:
            self._active.clear()
        self._active[collection] = (now, active)
        return active

    def forget_active(self, collection: str) -> None:
        """Drop the cached active space and counts (after a switch in this process)."""
        self._active.pop(collection, None)
        self._counts.pop(collection, None)

    def _faces_in_space(self, name: str, counts: dict[str, int]) -> int:
        space = self.embedder(name).space
        return sum(n for s, n in counts.items() if s == space or s.startswith(space + "+"))

    async def _space_counts(self, collection: str) -> dict[str, int]:
        now = time.monotonic()
        cached = self._counts.get(collection)
        if cached is not None and now - cached[0] < SPACE_COUNTS_TTL:
            return cached[1]
        counts = await self.space_counts(collection) if self.space_counts is not None else {}
        if len(self._counts) > 1000:
            self._counts.clear()
        self._counts[collection] = (now, counts)
        return counts

    def liveness_model(self) -> str:
        try:
            return self.models.resolve(ModelTask.LIVENESS, "auto")
        except Exception as exc:
            reason = str(getattr(exc, "message", exc))
            raise ServiceUnavailableError(
                "liveness checking is unavailable: " + reason,
                code="liveness_unavailable",
                reason=reason,
            ) from exc

    def embedder(self, name: str) -> FaceEmbedder:
        model = self.models.peek(name)
        if not isinstance(model, FaceEmbedder):  # pragma: no cover - resolved by task
            raise ServiceUnavailableError("embedder misconfigured", code="model_misconfigured")
        return model

    def check_liveness(self, requested: bool | None) -> bool:
        return self.liveness_default if requested is None else requested

    def subject_options(
        self,
        *,
        embedder: str | None,
        mode: ProcessingMode,
        enrollment: bool,
        check_liveness: bool | None,
        min_quality: float = 0.0,
    ) -> AnalysisOptions:
        """Options for the one face of an enrollment or query photo, models resolved."""
        resolved = self.resolve(embedder=embedder, liveness=self.check_liveness(check_liveness))
        return AnalysisOptions(
            detector=resolved.detector,
            embedder=resolved.embedder,
            choice=FaceChoice.ENROLL if enrollment else FaceChoice.SUBJECT,
            mode=mode,
            quality_bar=enrollment,
            min_quality=min_quality,
            liveness=resolved.liveness,
        )

    def all_faces_options(
        self,
        *,
        detector: str | None,
        conf_threshold: float = 0.5,
        iou_threshold: float = 0.4,
        max_faces: int = 50,
        min_quality: float = 0.0,
        liveness: bool = False,
        liveness_threshold: float | None = None,
    ) -> AnalysisOptions:
        """Options for every face of a photo (detection, anti-spoofing), models resolved."""
        resolved = self.resolve(detector=detector, liveness=liveness)
        return AnalysisOptions(
            detector=resolved.detector,
            choice=FaceChoice.ALL,
            conf_threshold=conf_threshold,
            iou_threshold=iou_threshold,
            max_faces=max_faces,
            min_quality=min_quality,
            liveness=resolved.liveness,
            liveness_threshold=liveness_threshold,
            reduced_decode=True,
        )

    # --- running the analysis -----------------------------------------------------------------

    async def analyse(self, data: bytes, options: AnalysisOptions, timer: StageTimer) -> Analysis:
        return await self.executor.run(self.analyzer.analyse, data, options, timer)

    async def query(self, data: bytes, options: AnalysisOptions, timer: StageTimer) -> Analysis:
        """The subject of a query photo (recognize, compare), from the recent-results cache when
        the same image was analysed with the same models."""
        if options.liveness or self.cache is None or options.choice is not FaceChoice.SUBJECT:
            return await self.analyse(data, options, timer)
        digest = await image_key_digest(data)
        key = image_result_key(digest, options.detector, f"{options.embedder}+{options.mode.value}")
        with timer.stage("cache"):
            cached = await self.cache.get_analysis(key)
        if cached is not None and cached.subject.quality.score >= options.min_quality:
            self._on_cache("hit")
            return cached
        self._on_cache("miss")
        analysis = await self.executor.run(self.analyzer.analyse, data, options, timer, digest)
        await self.cache.put_analysis(key, replace(analysis, probes=analysis.probes[:1]))
        return analysis


async def image_key_digest(data: bytes) -> str:
    """The photo's SHA-256, off the event loop when the photo is large (hashlib releases the GIL,
    so the loop serves other requests meanwhile)."""
    if len(data) <= HASH_ON_LOOP_BYTES:
        return digest_of(data)
    return await asyncio.to_thread(digest_of, data)
