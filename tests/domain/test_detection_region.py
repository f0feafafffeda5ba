"""Detection inside a region of a photo (``DetectOptions.region``): the detector sees a crop at
the scale it would see the whole photo at, starting on its coarsest anchor grid, and the faces
come back in the photo's pixels, where detection on the whole photo puts them. Bulk enrollment
uses it for a subject too small at its detector side (real RetinaFace and MobileFaceNet)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image

from facerec.config import Settings
from facerec.domain.bulk_enrollment_analysis import BatchAnalyzer, ChipAnalyzer, around
from facerec.domain.detection import CROP_GRID, DetectionService, DetectOptions, detect_downscaled
from facerec.domain.probes import Analysis, AnalysisOptions, FaceChoice
from facerec.domain.timing import StageTimer
from facerec.executor import InferenceExecutor
from facerec.inference.base import FaceDetector
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
from facerec.values import BBox, Detection
from tests.conftest import SHARED_MODELS
from tests.images import encode, grace_hopper_rgb

MOBILEFACENET = SHARED_MODELS / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx"


class SeeingDetector:
    """Returns one face at a fixed place of whatever it is given, and keeps what it got."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def detect(self, image: np.ndarray, **_: Any) -> list[Detection]:
        self.seen.append(image.copy())
        marks = np.array([[12, 14], [18, 14], [15, 17], [13, 20], [17, 20]], np.float32)
        return [Detection(BBox(10.0, 10.0, 20.0, 24.0), 0.9, marks)]


def gradient(height: int, width: int) -> np.ndarray:
    """Every pixel tells where it is: x in the blue channel, y in the green (mod 256)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 256, ys % 256, np.zeros_like(xs)], axis=2).astype(np.uint8)


def test_a_region_at_full_scale_is_a_grid_aligned_crop_mapped_back() -> None:
    image = gradient(480, 640)
    fake = SeeingDetector()
    region = BBox(203.4, 150.2, 331.0, 290.7)
    options = DetectOptions(region=region)
    (face,) = detect_downscaled(cast(FaceDetector, fake), image, 1024, options)
    (seen,) = fake.seen
    x0, y0 = 192, 128  # the region's corner, down to the 32 px grid
    assert seen.shape == (291 - y0, 331 - x0, 3)
    assert int(seen[0, 0, 0]) == x0 and int(seen[0, 0, 1]) == y0  # the crop's first pixel
    assert face.bbox == BBox(x0 + 10.0, y0 + 10.0, x0 + 20.0, y0 + 24.0)
    assert face.landmarks is not None
    assert face.landmarks[0].tolist() == [x0 + 12.0, y0 + 14.0]


def test_a_region_of_a_large_photo_is_seen_at_the_whole_photos_scale() -> None:
    image = gradient(1500, 2048)  # seen at half size with a 1024 px side
    fake = SeeingDetector()
    options = DetectOptions(region=BBox(700.0, 500.0, 1000.0, 900.0))
    (face,) = detect_downscaled(cast(FaceDetector, fake), image, 1024, options)
    (seen,) = fake.seen
    x0, y0 = 640, 448  # 320 and 224 at the detector's scale: multiples of CROP_GRID
    assert (x0 // 2) % CROP_GRID == 0 and (y0 // 2) % CROP_GRID == 0
    assert seen.shape == ((900 - y0) // 2, (1000 - x0) // 2, 3)
    assert face.bbox == BBox(x0 + 20.0, y0 + 20.0, x0 + 40.0, y0 + 48.0)


def test_a_region_past_the_edges_is_clipped_to_the_photo() -> None:
    image = gradient(200, 300)
    fake = SeeingDetector()
    options = DetectOptions(region=BBox(-50.0, -40.0, 500.0, 90.0))
    detect_downscaled(cast(FaceDetector, fake), image, 1024, options)
    assert fake.seen[0].shape == (90, 300, 3)


@pytest.fixture(scope="module")
def retinaface(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceDetector]:
    settings = Settings(
        _env_file=None, models={"model_dir": str(tmp_path_factory.mktemp("region-models"))}
    )
    manager = ModelManager(build_models(settings), settings.models)
    with manager.use("retinaface", FaceDetector) as detector:
        yield detector
    manager.close()


@pytest.mark.parametrize(("canvas", "side"), [((900, 1000), 1024), ((1200, 1600), 1024)])
def test_retinaface_on_a_crop_finds_the_face_where_the_whole_photo_does(
    retinaface: FaceDetector, canvas: tuple[int, int], side: int
) -> None:
    """Real RetinaFace: the face found on a crop around it (at 1:1 and at 0.64 scale) has the
    box and landmarks found on the whole photo, to a fraction of a pixel."""
    image = np.full((*canvas, 3), 120, np.uint8)
    face = grace_hopper_rgb()[:, :, ::-1]
    image[300 : 300 + face.shape[0], 350 : 350 + face.shape[1]] = face
    whole = max(detect_downscaled(retinaface, image, side, DetectOptions()), key=lambda f: f.score)
    region = around(whole.bbox, canvas[1], canvas[0])
    (cropped,) = detect_downscaled(retinaface, image, side, DetectOptions(region=region))
    assert whole.landmarks is not None and cropped.landmarks is not None
    corners = np.array([whole.bbox.x1, whole.bbox.y1, whole.bbox.x2, whole.bbox.y2])
    got = np.array([cropped.bbox.x1, cropped.bbox.y1, cropped.bbox.x2, cropped.bbox.y2])
    assert np.abs(got - corners).max() < 1.0
    assert np.abs(cropped.landmarks - whole.landmarks).max() < 1.0


class RecordingAnalyzer(ChipAnalyzer):
    """Keeps the region each analysis was asked to detect in."""

    def __init__(self, models: ModelManager, settings: Settings, side: int) -> None:
        limits = settings.limits.model_copy(update={"detect_max_side": side})
        super().__init__(models, DetectionService(models, limits), 0.5)
        self.regions: list[BBox | None] = []

    def analyse(
        self, data: bytes, options: AnalysisOptions, timer: StageTimer, digest: str | None = None
    ) -> Analysis:
        self.regions.append(options.region)
        return super().analyse(data, options, timer, digest)


def placed(canvas: tuple[int, int], scale: float) -> bytes:
    """Grace Hopper scaled by ``scale`` on a grey (width, height) canvas, as a JPEG."""
    board = np.full((canvas[1], canvas[0], 3), 120, np.uint8)
    face = grace_hopper_rgb()
    size = (round(face.shape[1] * scale), round(face.shape[0] * scale))
    face = np.asarray(Image.fromarray(face).resize(size, Image.Resampling.BICUBIC))
    board[100 : 100 + face.shape[0], 200 : 200 + face.shape[1]] = face
    return encode(board, "JPEG", quality=92)


@pytest.fixture(scope="module")
def bulk_models(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, ModelManager]]:
    model_dir = tmp_path_factory.mktemp("bulk-region-models")
    (model_dir / "mobilefacenet").mkdir()
    (model_dir / "mobilefacenet" / MOBILEFACENET.name).symlink_to(MOBILEFACENET)
    settings = Settings(_env_file=None, models={"model_dir": str(model_dir)})
    manager = ModelManager(build_models(settings), settings.models)
    yield settings, manager
    manager.close()


def bulk_analysis(
    settings: Settings, manager: ModelManager, data: bytes
) -> tuple[Analysis, RecordingAnalyzer, RecordingAnalyzer]:
    coarse = RecordingAnalyzer(manager, settings, 320)
    full = RecordingAnalyzer(manager, settings, settings.limits.detect_max_side)
    batch = BatchAnalyzer(
        models=manager,
        analyzer=coarse,
        executor=cast(InferenceExecutor, None),  # _analyse_one runs on the caller's thread
        threads=1,
        full=full,
        side=320,
    )
    options = AnalysisOptions(
        detector="retinaface", embedder="mobilefacenet", choice=FaceChoice.ENROLL
    )
    return batch._analyse_one(data, options, StageTimer()), coarse, full


def test_bulk_detects_a_small_subject_again_on_a_crop_only(
    bulk_models: tuple[Settings, ModelManager],
) -> None:
    settings, manager = bulk_models
    found, coarse, full = bulk_analysis(settings, manager, placed((1600, 1200), 0.5))
    assert coarse.regions == [None]
    (region,) = full.regions  # once, on a crop: not the whole photo
    assert region is not None and region.width < 600 and region.height < 600
    box = found.subject.detection.bbox  # in the photo's pixels
    assert region.x1 < box.x1 < box.x2 < region.x2 and region.y1 < box.y1 < box.y2 < region.y2
    assert found.image.width == 1600


def test_bulk_keeps_a_subject_the_bulk_side_resolves(
    bulk_models: tuple[Settings, ModelManager],
) -> None:
    settings, manager = bulk_models
    _, coarse, full = bulk_analysis(settings, manager, placed((640, 640), 0.8))
    assert coarse.regions == [None] and full.regions == []
