"""The analysis of a large photo from a reduced decode gives the faces, landmarks and embeddings
that the straightforward path gives (decode at full size, detect on a downscaled copy, cut chips
from the full image), and falls back to that path when a face is too small for the reduced pixels.

Real models: RetinaFace and dlib from their wheels, MobileFaceNet from ../shared/models.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import lru_cache

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

from facerec.config import Settings
from facerec.domain.analysis import Analyzer
from facerec.domain.detection import (
    DetectionResult,
    DetectionService,
    DetectOptions,
    detect_downscaled,
)
from facerec.domain.probes import AnalysisOptions, FaceChoice, ProcessingMode
from facerec.domain.timing import StageTimer
from facerec.inference.align import mirror_detection
from facerec.inference.base import FaceDetector, FaceEmbedder
from facerec.inference.images import DecodedImage
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
from facerec.values import Detection
from tests.conftest import SHARED_MODELS, unavailable
from tests.images import encode, grace_hopper_rgb

MOBILEFACENET = SHARED_MODELS / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx"
SCRFD = SHARED_MODELS / "scrfd" / "scrfd_500m_bnkps.onnx"


class RecordingDetection(DetectionService):
    """Notes whether each decode was reduced, and how often detection ran."""

    def __init__(self, models: ModelManager, settings: Settings) -> None:
        super().__init__(models, settings.limits)
        self.decodes: list[bool] = []
        self.sides: list[int] = []  # the longer side of each decode's pixels
        self.detections = 0

    def detect_decoded(
        self, image: DecodedImage, options: DetectOptions, timer: StageTimer
    ) -> DetectionResult:
        self.detections += 1
        return super().detect_decoded(image, options, timer)

    def decode(
        self,
        data: bytes,
        timer: StageTimer,
        *,
        reduced: bool = False,
        detector: str | None = None,
        at_least: int | None = None,
    ) -> DecodedImage:
        self.decodes.append(reduced)
        image = super().decode(data, timer, reduced=reduced, detector=detector, at_least=at_least)
        self.sides.append(max(image.pixels.shape[:2]))
        return image


@lru_cache(maxsize=1)
def _models(model_dir: str) -> tuple[Settings, ModelManager]:
    settings = Settings(_env_file=None, models={"model_dir": model_dir})  # type: ignore[call-arg]
    return settings, ModelManager(build_models(settings), settings.models)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, ModelManager]]:
    model_dir = tmp_path_factory.mktemp("models")
    if MOBILEFACENET.is_file():
        (model_dir / "mobilefacenet").mkdir()
        (model_dir / "mobilefacenet" / MOBILEFACENET.name).symlink_to(MOBILEFACENET)
    if SCRFD.is_file():
        (model_dir / "scrfd_500m").mkdir()
        (model_dir / "scrfd_500m" / SCRFD.name).symlink_to(SCRFD)
    yield _models(str(model_dir))


def photo(width: int, orientation: int = 1, canvas: tuple[int, int] | None = None) -> bytes:
    """Grace Hopper scaled to ``width`` px, alone or placed on a grey ``canvas``, as a JPEG."""
    rgb = Image.fromarray(grace_hopper_rgb())
    scaled = rgb.resize((width, round(rgb.height * width / rgb.width)), Image.Resampling.BICUBIC)
    if canvas is not None:
        board = Image.new("RGB", canvas, (128, 128, 128))
        board.paste(scaled, (canvas[0] // 3, canvas[1] // 3))
        scaled = board
    if orientation == 1:
        return encode(scaled, "JPEG", quality=92)
    # Store the pixels so that the EXIF orientation turns them back upright.
    stored = {6: scaled.transpose(Image.Transpose.ROTATE_90), 3: scaled.rotate(180)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def straightforward(
    data: bytes,
    models: ModelManager,
    settings: Settings,
    embedder: str,
    detector_name: str = "retinaface",
) -> tuple[Detection, NDArray[np.float32]]:
    """Full-size decode, detection on a downscaled copy, the chip from the full image."""
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert upright is not None
    image = np.ascontiguousarray(np.asarray(upright.convert("RGB"))[:, :, ::-1])
    with models.use(detector_name, FaceDetector) as detector:
        faces = detect_downscaled(detector, image, settings.limits.detect_max_side, DetectOptions())
    face = max(faces, key=lambda f: f.bbox.area)
    with models.use(embedder, FaceEmbedder) as model:
        return face, model.embed(image, [face])[0]


def analyse(
    data: bytes, models: ModelManager, settings: Settings, embedder: str
) -> tuple[list[bool], Detection, NDArray[np.float32]]:
    detection = RecordingDetection(models, settings)
    analyzer = Analyzer(models, detection, 0.5)
    options = AnalysisOptions(detector="retinaface", embedder=embedder, choice=FaceChoice.SUBJECT)
    result = analyzer.analyse(data, options, StageTimer())
    assert detection.detections == 1  # a second decode never runs detection again
    return detection.decodes, result.subject.detection, result.subject.vector


def embedders() -> list[str]:
    return ["dlib_resnet", "mobilefacenet"]


def close_enough(embedder: str, a: NDArray[np.float32], b: NDArray[np.float32]) -> None:
    if embedder == "dlib_resnet":  # L2 space: same person below 0.6
        assert float(np.linalg.norm(a - b)) < 0.05
    else:  # cosine, L2-normalised
        assert float(a @ b) > 0.995


def same_face(got: Detection, expected: Detection) -> None:
    tolerance = 0.02 * expected.bbox.width  # ~2 px of the 1024 px image detection sees
    for g, e in zip(
        (got.bbox.x1, got.bbox.y1, got.bbox.x2, got.bbox.y2),
        (expected.bbox.x1, expected.bbox.y1, expected.bbox.x2, expected.bbox.y2),
        strict=True,
    ):
        assert abs(g - e) < tolerance
    assert got.landmarks is not None and expected.landmarks is not None
    assert np.abs(got.landmarks - expected.landmarks).max() < tolerance


@pytest.mark.parametrize("embedder", embedders())
@pytest.mark.parametrize(("width", "orientation"), [(512, 1), (1920, 1), (4000, 1), (4000, 6)])
def test_reduced_decode_gives_the_straightforward_faces_and_embeddings(
    models: tuple[Settings, ModelManager], embedder: str, width: int, orientation: int
) -> None:
    settings, manager = models
    if embedder == "mobilefacenet" and not MOBILEFACENET.is_file():
        unavailable(f"MobileFaceNet weights at {MOBILEFACENET}", "see ../shared/models/README.md")
    data = photo(width, orientation)
    decodes, face, vector = analyse(data, manager, settings, embedder)
    assert decodes == [True]  # one decode, at the scale detection needs
    expected_face, expected_vector = straightforward(data, manager, settings, embedder)
    same_face(face, expected_face)
    close_enough(embedder, vector, expected_vector)


def test_a_face_too_small_for_the_reduced_decode_is_analysed_at_full_size(
    models: tuple[Settings, ModelManager],
) -> None:
    settings, manager = models
    data = photo(260, canvas=(4000, 3000))  # a ~110 px face in a 12 MP photo
    decodes, face, vector = analyse(data, manager, settings, "dlib_resnet")
    assert decodes == [True, False]  # the second at full size: no DCT scale between 1/2 and 1
    expected_face, expected_vector = straightforward(data, manager, settings, "dlib_resnet")
    same_face(face, expected_face)
    close_enough("dlib_resnet", vector, expected_vector)


def test_a_face_the_reduced_decode_is_too_coarse_for_is_cut_from_the_next_dct_scale(
    models: tuple[Settings, ModelManager],
) -> None:
    """SCRFD sees a 4000 px photo decoded at 1/4 (1000 px); a face ~430 px wide there is too
    coarse for a 112 px MobileFaceNet chip (``CHIP_DETAIL``), so the photo is decoded again at
    1/2, the scale the chip needs, not in full: the face and vector are the straightforward
    ones."""
    settings, manager = models
    if not (SCRFD.is_file() and MOBILEFACENET.is_file()):
        unavailable("SCRFD-500M and MobileFaceNet weights", "see ../shared/models/README.md")
    detection = RecordingDetection(manager, settings)
    data = photo(1200, canvas=(4000, 3000))
    options = AnalysisOptions(
        detector="scrfd_500m", embedder="mobilefacenet", choice=FaceChoice.SUBJECT
    )
    result = Analyzer(manager, detection, 0.5).analyse(data, options, StageTimer())
    assert detection.decodes == [True, False]
    assert detection.sides == [1000, 2000]
    assert detection.detections == 1
    face, vector = straightforward(data, manager, settings, "mobilefacenet", "scrfd_500m")
    same_face(result.subject.detection, face)
    close_enough("mobilefacenet", result.subject.vector, vector)


@pytest.mark.parametrize("width", [1920, 4000])
def test_a_letterboxing_detector_gets_the_photo_decoded_and_resized_once_to_its_input(
    models: tuple[Settings, ModelManager], width: int
) -> None:
    """SCRFD letterboxes every image into 640 x 640: the photo is decoded at the scale that
    size needs (not ``detect_max_side``'s 1024) and reaches the network without a second
    resize, with the faces and vectors of the straightforward path."""
    settings, manager = models
    if not SCRFD.is_file():
        unavailable(f"SCRFD-500M weights at {SCRFD}", "see ../shared/models/README.md")
    detection = RecordingDetection(manager, settings)
    assert detection.detect_side("scrfd_500m") == 640
    assert detection.detect_side("retinaface") == settings.limits.detect_max_side
    seen: list[tuple[int, ...]] = []
    with manager.use("scrfd_500m", FaceDetector) as scrfd:
        fit = scrfd.fit  # type: ignore[attr-defined]

        def recording_fit(image: NDArray[np.uint8], **kwargs: int) -> object:
            seen.append(image.shape)
            placed = fit(image, **kwargs)
            assert placed.scale == 1.0  # already the size the input takes
            return placed

        scrfd.fit = recording_fit  # type: ignore[attr-defined]
        try:
            data = photo(width)
            options = AnalysisOptions(
                detector="scrfd_500m", embedder="dlib_resnet", choice=FaceChoice.SUBJECT
            )
            result = Analyzer(manager, detection, 0.5).analyse(data, options, StageTimer())
        finally:
            del scrfd.fit  # type: ignore[attr-defined]
    assert detection.decodes == [True]
    assert max(seen[0][:2]) == 640  # what the network takes, with no second resize
    face, vector = straightforward(data, manager, settings, "dlib_resnet", "scrfd_500m")
    same_face(result.subject.detection, face)
    close_enough("dlib_resnet", result.subject.vector, vector)


def test_png_and_webp_are_decoded_as_they_come(models: tuple[Settings, ModelManager]) -> None:
    settings, manager = models
    rgb = Image.fromarray(grace_hopper_rgb()).resize((1600, 1875))
    for data in (encode(rgb, "PNG"), encode(rgb, "WEBP", quality=95)):
        decodes, face, vector = analyse(data, manager, settings, "dlib_resnet")
        assert decodes == [True]
        expected_face, expected_vector = straightforward(data, manager, settings, "dlib_resnet")
        same_face(face, expected_face)
        close_enough("dlib_resnet", vector, expected_vector)


def test_accurate_mode_mirrors_only_around_the_face(models: tuple[Settings, ModelManager]) -> None:
    settings, manager = models
    data = photo(1920)
    analyzer = Analyzer(manager, DetectionService(manager, settings.limits), 0.5)
    options = AnalysisOptions(
        detector="retinaface", embedder="dlib_resnet", mode=ProcessingMode.ACCURATE
    )
    got = analyzer.analyse(data, options, StageTimer()).subject.vector
    face, vector = straightforward(data, manager, settings, "dlib_resnet")
    upright = np.ascontiguousarray(
        np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, ::-1, ::-1]
    )
    with manager.use("dlib_resnet", FaceEmbedder) as model:
        mirrored = model.embed(upright, [mirror_detection(face, upright.shape[1])])[0]
    close_enough("dlib_resnet", got, (vector + mirrored) / 2.0)
