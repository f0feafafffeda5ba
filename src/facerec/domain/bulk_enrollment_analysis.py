"""Many enrollment photos analysed at once: both cores locate faces, batched calls embed them.

Per photo, on the executor's threads (one worker per thread takes the next photos, two at a time,
until none is left, so that other requests get a thread between two jobs):
:meth:`Analyzer.analyse` exactly as single enrollment runs it (decode once, detect, the enrollment
subject with its gates: ``no_face``, ``multiple_faces``, the quality bar, liveness), except that
its embed step only cuts the embedder's aligned chip. Then the chips of the whole batch are
embedded in batched calls (:meth:`FaceEmbedder.embed_aligned`), one per executor thread. The
chip is re-aligned there by a transform that is the identity up to rounding, so the vectors are
single enrollment's (tests/api/test_bulk_enrollment.py compares them). ``accurate`` mode (mirror
averaging), faces without landmarks and embedders that hold the GIL while they run (dlib:
:func:`releases_gil`) are embedded per photo, as single enrollment does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from facerec.domain.analysis import Analyzer
from facerec.domain.probes import Analysis, AnalysisOptions, ProcessingMode
from facerec.domain.timing import StageSink, StageTimer
from facerec.errors import FaceRejectedError, InvalidInputError
from facerec.executor import InferenceExecutor
from facerec.inference.base import AlignedChip, FaceEmbedder
from facerec.inference.images import DecodedImage
from facerec.inference.manager import ModelManager
from facerec.values import BBox, Detection

# Photos one executor job analyses: small, so that other requests are not held up by a batch.
PHOTOS_PER_JOB = 2
# Chips per embedding call at least: smaller batches are not split over the threads.
MIN_SHARE = 8
# Height (pixels at the bulk detector side) of a subject whose landmarks the bulk side keeps;
# a smaller one is detected again at the service's scale, on a crop around it. On faces-dev's
# photos (RetinaFace, sides 256-480 against 1024) MobileFaceNet vectors of faces at least this
# tall moved by a median cosine distance of 0.03 (p90 0.05), smaller ones up to 0.2; detected
# again on the crop, smaller ones by 0.005 at most (bench/bench_bulk_side.py).
MIN_BULK_FACE = 64
# Context kept around a small subject detected again on a crop, in face sizes on each side
# (RetinaFace's anchors see a face with about its own size of context around it).
REFINE_MARGIN = 1.0
# What one photo gave: its analysis (the subject embedded), or why it was refused.
PhotoAnalysis = Analysis | InvalidInputError
# A photo as it came: its encoded bytes, or why the API could not read it (bad base64, too large).
PhotoInput = bytes | InvalidInputError


class ChipAnalyzer(Analyzer):
    """:class:`Analyzer` whose embed step cuts the aligned chip and leaves the vector NaN (to be
    filled by :meth:`BatchAnalyzer.embed`); where a batch cannot serve (mirror averaging, no
    landmarks) it embeds as usual."""

    def _embed(
        self,
        image: DecodedImage,
        faces: list[Detection],
        options: AnalysisOptions,
        timer: StageTimer,
    ) -> tuple[NDArray[np.float32], str, list[AlignedChip | None]]:
        name = options.embedder or ""
        with self._models.use(name, FaceEmbedder) as model:
            mirrored = options.mode is ProcessingMode.ACCURATE and not model.mirror_averaged
            if not mirrored and releases_gil(model):
                with timer.stage("align", name):
                    chips = model.chips_of(image.pixels, faces)
                if all(chip is not None for chip in chips):
                    pending = np.full((len(faces), model.dim), np.nan, dtype=np.float32)
                    return pending, model.space, chips
        return super()._embed(image, faces, options, timer)


def around(box: BBox, width: int, height: int) -> BBox:
    """``box`` grown by ``REFINE_MARGIN`` face sizes on each side, within the photo."""
    margin = REFINE_MARGIN * max(box.width, box.height)
    grown = BBox(box.x1 - margin, box.y1 - margin, box.x2 + margin, box.y2 + margin)
    return grown.clipped(width, height)


def releases_gil(model: FaceEmbedder) -> bool:
    """Whether a batched call of ``model`` leaves the other threads (and the event loop) free:
    onnxruntime sessions release the GIL while they run; dlib's descriptor keeps it for the
    whole call (measured: a thread beside a 16-chip dlib call ran 0.6% of its iterations), so
    dlib faces are embedded one photo at a time, as single enrollment does (batching gains dlib
    no CPU time either: 106 against 108 ms per chip)."""
    return hasattr(model.session, "get_providers")


def _merge(timer: StageTimer, jobs: list[StageTimer]) -> None:
    """Stage times of the jobs summed into the request's timer (CPU-like, not wall time)."""
    for job in jobs:
        for stage, seconds in job.stages.items():
            timer.stages[stage] = timer.stages.get(stage, 0.0) + seconds


def _pending(analysis: Analysis) -> bool:
    embedding = analysis.subject.embedding
    return embedding is not None and bool(np.isnan(embedding).any())


class BatchAnalyzer:
    def __init__(
        self,
        *,
        models: ModelManager,
        analyzer: ChipAnalyzer,
        executor: InferenceExecutor,
        threads: int,
        sink: StageSink | None = None,
        full: ChipAnalyzer | None = None,
        side: int = 0,
    ) -> None:
        self._models = models
        self._analyzer = analyzer  # detection with the detector's input side at most ``side``
        self._full = full  # detection at the service's own side, where ``side`` is too small
        self._side = side
        self._executor = executor
        self._threads = max(1, threads)
        self._sink = sink

    async def analyse(
        self, images: Sequence[PhotoInput], options: AnalysisOptions, timer: StageTimer
    ) -> list[PhotoAnalysis]:
        """One result per image, in order; a photo's own fault is its result, never raised
        (model or storage failures are raised)."""
        results: list[PhotoAnalysis | None] = [
            image if isinstance(image, InvalidInputError) else None for image in images
        ]
        queue = [i for i, r in enumerate(results) if r is None]

        def analyse(indexes: list[int], job_timer: StageTimer) -> list[PhotoAnalysis]:
            out: list[PhotoAnalysis] = []
            for index in indexes:
                data = images[index]
                try:
                    if isinstance(data, InvalidInputError):  # pragma: no cover - never queued
                        raise data
                    out.append(self._analyse_one(data, options, job_timer))
                except InvalidInputError as exc:  # this photo's fault; model errors propagate
                    out.append(exc)
            return out

        async def worker(job_timer: StageTimer) -> None:
            # A few photos per job: requests queued meanwhile get a thread between two jobs.
            while queue:
                indexes, queue[:PHOTOS_PER_JOB] = queue[:PHOTOS_PER_JOB], []
                out = await self._executor.run(analyse, indexes, job_timer)
                for index, result in zip(indexes, out, strict=True):
                    results[index] = result

        jobs = [StageTimer(self._sink) for _ in range(min(self._threads, len(queue)))]
        await asyncio.gather(*(worker(job) for job in jobs))
        _merge(timer, jobs)
        done = [r for r in results if r is not None]
        waiting = [r for r in done if isinstance(r, Analysis) and _pending(r)]
        if waiting:
            # One batched call per thread (dlib's runs on one core; onnxruntime's gains nothing
            # from a batch larger than a few chips), each over a contiguous share of the chips.
            shares = max(1, min(self._threads, len(waiting) // MIN_SHARE))
            size = -(-len(waiting) // shares)
            parts = [waiting[i : i + size] for i in range(0, len(waiting), size)]
            timers = [StageTimer(self._sink) for _ in parts]
            embedded = await asyncio.gather(
                *(
                    self._executor.run(self.embed, part, options, part_timer)
                    for part, part_timer in zip(parts, timers, strict=True)
                )
            )
            _merge(timer, timers)
            filled = {
                id(r): e
                for part, out in zip(parts, embedded, strict=True)
                for r, e in zip(part, out, strict=True)
            }
            done = [filled.get(id(r), r) for r in done]
        return done

    def _analyse_one(self, data: bytes, options: AnalysisOptions, timer: StageTimer) -> Analysis:
        """The photo analysed with the bulk detector side; a subject under ``MIN_BULK_FACE``
        pixels tall at that side (where the landmarks, and so the vector, drift) is detected
        again at the service's own scale on a crop around it, and a photo where that side
        finds no face, or where the crop does not settle the subject, is analysed whole at the
        service's side: a smaller bulk side neither refuses a photo single enrollment takes nor
        stores a small face's vector from coarser landmarks than single enrollment's."""
        if self._full is None:
            return self._analyzer.analyse(data, options, timer)
        try:
            found = self._analyzer.analyse(data, options, timer)
        except FaceRejectedError as exc:
            if exc.code != "no_face":
                raise
        else:
            box, longest = found.subject.detection.bbox, max(found.image.width, found.image.height)
            if longest <= self._side or box.height * self._side / longest >= MIN_BULK_FACE:
                return found  # (a photo within the bulk side is seen whole either way)
            region = around(box, found.image.width, found.image.height)
            try:
                refined = self._full.analyse(data, replace(options, region=region), timer)
            except FaceRejectedError:
                pass  # the crop does not settle it: the whole photo does, as single enrollment
            else:
                faces = max(found.faces_in_image, refined.faces_in_image)
                return replace(refined, faces_in_image=faces)
        return self._full.analyse(data, options, timer)

    def embed(
        self, analyses: list[Analysis], options: AnalysisOptions, timer: StageTimer
    ) -> list[Analysis]:
        """The pending subjects' chips embedded in one batched call (blocking)."""
        name = options.embedder or ""
        chips = [a.subject.chip for a in analyses]
        ready = [c for c in chips if c is not None]
        with self._models.use(name, FaceEmbedder) as model, timer.stage("embed", name):
            vectors = np.asarray(model.embed_aligned(ready), dtype=np.float32)
        out = []
        for analysis, vector in zip(analyses, vectors, strict=True):
            chip = analysis.subject.chip if options.keep_chips else None
            probe = replace(analysis.subject, embedding=vector, chip=chip)
            out.append(replace(analysis, probes=[probe]))
        return out
