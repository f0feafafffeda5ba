"""What one bulk enrollment may hold, checked before any photo is decoded, and the service's
assembly from the parts the app (or the offline CLI) already has."""

from __future__ import annotations

from collections.abc import Sequence

from facerec.config import LimitSettings, Settings
from facerec.domain.bulk_enrollment import BulkEnrollmentService
from facerec.domain.bulk_enrollment_analysis import BatchAnalyzer, ChipAnalyzer, PhotoInput
from facerec.domain.detection import DetectionService
from facerec.domain.enrollment import EnrollmentService
from facerec.domain.timing import StageSink
from facerec.errors import InvalidInputError, PayloadTooLargeError
from facerec.executor import InferenceExecutor
from facerec.inference.images import header_pixels
from facerec.inference.manager import ModelManager


def check_counts(counts: Sequence[int], limits: LimitSettings) -> None:
    """400 ``too_many_images``: more photos in all than ``max_bulk_images``, or more for one
    person than ``max_images_per_request`` (the register-multiple bound)."""
    total = sum(counts)
    if total > limits.max_bulk_images:
        raise InvalidInputError(
            f"{total} photos sent; at most {limits.max_bulk_images} per batch",
            code="too_many_images",
            limit=limits.max_bulk_images,
        )
    for index, count in enumerate(counts):
        if count > limits.max_images_per_request:
            raise InvalidInputError(
                f"person {index} has {count} photos; at most "
                f"{limits.max_images_per_request} per person",
                code="too_many_images",
                limit=limits.max_images_per_request,
                person=index,
            )


def check_bytes(size: int, limits: LimitSettings) -> None:
    """413 ``batch_too_large``: more encoded bytes of photos than ``max_bulk_bytes``."""
    if size > limits.max_bulk_bytes:
        raise PayloadTooLargeError(
            f"the photos of this batch have {size} bytes in all; the limit is "
            f"{limits.max_bulk_bytes}",
            code="batch_too_large",
            size_bytes=size,
            limit_bytes=limits.max_bulk_bytes,
        )


def check_photos(photos: Sequence[PhotoInput], limits: LimitSettings) -> None:
    """The bytes, then the header pixels (413 ``too_many_pixels``) of the photos read."""
    data = [p for p in photos if isinstance(p, bytes)]
    check_bytes(sum(len(d) for d in data), limits)
    pixels = sum(header_pixels(d) for d in data)
    if pixels > limits.max_bulk_pixels:
        raise PayloadTooLargeError(
            f"the photos of this batch have {pixels} pixels in all; the limit is "
            f"{limits.max_bulk_pixels}",
            code="too_many_pixels",
            pixels=pixels,
            limit_pixels=limits.max_bulk_pixels,
        )


def build_bulk_enrollment(
    *,
    settings: Settings,
    models: ModelManager,
    executor: InferenceExecutor,
    enrollment: EnrollmentService,
    sink: StageSink | None = None,
) -> BulkEnrollmentService:
    """The app's analysis (its liveness threshold; its detection, but with the detector's input
    side at most ``bulk_detect_max_side`` and the app's own side for a photo where that finds no
    face or a subject too small for it), on every executor thread."""

    def analyzer(limits: LimitSettings) -> ChipAnalyzer:
        return ChipAnalyzer(
            models,
            DetectionService(models, limits),
            settings.liveness.threshold,
            settings.liveness.min_context_ratio,
        )

    limits = settings.limits
    full = analyzer(limits)
    bulk_side = limits.bulk_detect_max_side
    first = full
    if bulk_side is not None and bulk_side < limits.detect_max_side:
        first = analyzer(limits.model_copy(update={"detect_max_side": bulk_side}))
    batch = BatchAnalyzer(
        models=models,
        analyzer=first,
        executor=executor,
        threads=settings.server.executor_threads,
        sink=sink,
        full=full if first is not full else None,
        side=bulk_side or limits.detect_max_side,
    )
    return BulkEnrollmentService(enrollment=enrollment, analyzer=batch)
