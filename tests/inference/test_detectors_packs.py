"""The pack detectors (SCRFD, YuNet, YOLOv8-face, YOLOv5-face).

Decoding: tiny ONNX graphs built here with the exact output names and shapes of each family whose
constant outputs encode one known box and five landmarks at a known grid cell (and anchor) must
come back as that box and those landmarks, through the letterbox. Real weights
(../shared/models): imported with ``facerec models import`` into a temporary model dir, then run on
real photos against RetinaFace.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.cli import main
from facerec.config import Settings
from facerec.inference import catalogue
from facerec.inference.base import FaceDetector, RuntimeOptions
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.manager import ModelManager
from facerec.inference.pack_install import install_pack_file
from facerec.inference.pack_validation import read_manifest
from facerec.inference.registry import build_models
from facerec.inference.types import ModelTask
from facerec.values import BBox, Detection
from tests.images import astronaut_rgb, composite_rgb, grace_hopper_rgb

PACK_DETECTORS = ("scrfd_500m", "scrfd_2.5g", "yunet", "yolov8-lite-t", "yolov5n-0.5")
SHARED_FILES = {
    "scrfd_500m": "scrfd/scrfd_500m_bnkps.onnx",
    "scrfd_2.5g": "scrfd/scrfd_2.5g_bnkps.onnx",
    "yunet": "yunet/face_detection_yunet_2023mar.onnx",
    "yolov8-lite-t": "yolov8-face/yolov8-lite-t.onnx",
    "yolov5n-0.5": "yolov5-face/yolov5n-0.5.onnx",
}

# The face every tiny graph encodes, in network-input pixels (640 x 640), at stride 16.
STRIDE, ROW, COL, CELLS = 16, 12, 15, 40
CENTRE = np.array([COL * STRIDE + 8.0, ROW * STRIDE + 8.0])  # (248, 200): YOLOv8's cell centre
HALF = np.array([48.0, 64.0])  # 6 and 8 cells: whole bins of YOLOv8's box distribution
BOX = np.concatenate([CENTRE - HALF, CENTRE + HALF])
POINTS = np.array([[228.0, 180.0], [270.0, 182.0], [249.0, 205.0], [232.0, 230.0], [266.0, 231.0]])


def logit(p: float | NDArray[np.float64]) -> NDArray[np.float64]:
    value = np.asarray(p, dtype=np.float64)
    return np.asarray(np.log(value / (1 - value)))


# --- tiny graphs ---


@dataclass(frozen=True)
class Tiny:
    input_name: str
    input_shape: list[int | str]
    outputs: dict[str, NDArray[np.float32]]
    output_shapes: dict[str, list[int | str]] | None = None


def tiny_graph(spec: Tiny, path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node(
            "Constant", [], [name], value=numpy_helper.from_array(value.astype(np.float32))
        )
        for name, value in spec.outputs.items()
    ]
    shapes = spec.output_shapes or {n: list(v.shape) for n, v in spec.outputs.items()}
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, spec.input_shape)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shapes[n]) for n in spec.outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def scrfd_outputs(anchor: int = 1) -> list[dict[str, NDArray[np.float32]]]:
    """score, bbox, kps per stride 8/16/32 (2 anchors per cell at the cell's corner)."""
    heads: list[dict[str, NDArray[np.float32]]] = []
    for stride in (8, 16, 32):
        n = (640 // stride) ** 2 * 2
        score, bbox, kps = np.zeros((n, 1)), np.zeros((n, 4)), np.zeros((n, 10))
        if stride == STRIDE:
            index = (ROW * CELLS + COL) * 2 + anchor
            corner = np.array([COL, ROW]) * STRIDE
            score[index] = 0.9
            bbox[index] = np.concatenate([corner - BOX[:2], BOX[2:] - corner]) / STRIDE
            kps[index] = ((POINTS - corner) / STRIDE).ravel()
        heads.append({"score": score, "bbox": bbox, "kps": kps})
    return [{k: v.astype(np.float32) for k, v in h.items()} for h in heads]


def scrfd_500m_tiny() -> Tiny:
    heads = scrfd_outputs()
    outputs = {
        f"{kind}_{stride}": head[kind][None]
        for kind in ("score", "bbox", "kps")
        for stride, head in zip((8, 16, 32), heads, strict=True)
    }
    return Tiny("input.1", [1, 3, 640, 640], outputs)


def scrfd_2_5g_tiny() -> Tiny:
    heads = scrfd_outputs(anchor=0)
    names = iter(str(n) for n in (446, 466, 486, 449, 469, 489, 452, 472, 492))
    outputs = {next(names): head[kind] for kind in ("score", "bbox", "kps") for head in heads}
    shapes: dict[str, list[int | str]] = {n: ["N", v.shape[1]] for n, v in outputs.items()}
    return Tiny("input.1", [1, 3, "?", "?"], outputs, shapes)


def yunet_tiny() -> Tiny:
    outputs: dict[str, NDArray[np.float32]] = {}
    for stride in (8, 16, 32):
        n = (640 // stride) ** 2
        cls, obj, bbox, kps = (
            np.zeros((n, 1)),
            np.zeros((n, 1)),
            np.zeros((n, 4)),
            np.zeros((n, 10)),
        )
        if stride == STRIDE:
            index, cell = ROW * CELLS + COL, np.array([COL, ROW])
            cls[index], obj[index] = 0.9, 0.9
            size = BOX[2:] - BOX[:2]
            bbox[index] = np.concatenate([CENTRE / STRIDE - cell, np.log(size / STRIDE)])
            kps[index] = (POINTS / STRIDE - cell).ravel()
        for kind, value in (("cls", cls), ("obj", obj), ("bbox", bbox), ("kps", kps)):
            outputs[f"{kind}_{stride}"] = value[None].astype(np.float32)
    return Tiny("input", [1, 3, 640, 640], outputs)


def yolov8_tiny() -> Tiny:
    outputs: dict[str, NDArray[np.float32]] = {}
    for name, stride in (("output0", 8), ("884", 16), ("892", 32)):
        cells = 640 // stride
        head = np.zeros((1, 80, cells, cells))
        head[0, 64] = -10.0  # score logit everywhere: nothing
        if stride == STRIDE:
            distances = np.concatenate([CENTRE - BOX[:2], BOX[2:] - CENTRE]) / STRIDE
            for side, d in enumerate(distances):
                head[0, side * 16 + round(d), ROW, COL] = 40.0  # one bin: expectation = d
            head[0, 64, ROW, COL] = 3.0
            cell = np.array([COL, ROW])
            for k, point in enumerate(POINTS):
                head[0, 65 + 3 * k : 67 + 3 * k, ROW, COL] = (point / STRIDE - cell) / 2
                head[0, 67 + 3 * k, ROW, COL] = 5.0  # visibility
        outputs[name] = head.astype(np.float32)
    return Tiny("images", [1, 3, 640, 640], outputs)


def yolov5_tiny(anchor: int = 1) -> Tiny:
    anchors = {16: ((23, 29), (43, 55), (73, 105))}
    outputs: dict[str, NDArray[np.float32]] = {}
    for stride in (8, 16, 32):
        cells = 640 // stride
        head = np.zeros((1, 3, cells, cells, 16))
        head[..., 4] = -10.0
        if stride == STRIDE:
            size = np.asarray(anchors[16][anchor], dtype=np.float64)
            cell = np.array([COL, ROW]) * STRIDE
            raw = head[0, anchor, ROW, COL]
            raw[0:2] = logit(((CENTRE - cell) / STRIDE + 0.5) / 2)
            raw[2:4] = logit(np.sqrt((BOX[2:] - BOX[:2]) / size) / 2)
            raw[4] = raw[15] = 4.0
            raw[5:15] = ((POINTS - cell) / size).ravel()
        outputs[f"stride_{stride}"] = head.astype(np.float32)
    return Tiny("data", [1, 3, 640, 640], outputs)


TINY: dict[str, tuple[Callable[[], Tiny], float]] = {
    # name: (graph, expected score)
    "scrfd_500m": (scrfd_500m_tiny, 0.9),
    "scrfd_2.5g": (scrfd_2_5g_tiny, 0.9),
    "yunet": (yunet_tiny, 0.9),
    "yolov8-lite-t": (yolov8_tiny, 1 / (1 + math.exp(-3.0))),
    "yolov5n-0.5": (yolov5_tiny, (1 / (1 + math.exp(-4.0))) ** 2),
}


def detector_in(model_dir: Path, name: str) -> FaceDetector:
    model = build_models(Settings(models={"model_dir": model_dir}))[name]
    assert isinstance(model, FaceDetector)
    assert model.is_installed(), model.not_installed_reason()
    model.load(RuntimeOptions())
    return model


@pytest.mark.parametrize("name", PACK_DETECTORS)
def test_tiny_graph_decodes_to_the_encoded_face(name: str, tmp_path: Path) -> None:
    build, score = TINY[name]
    graph = tiny_graph(build(), tmp_path / "tiny.onnx")
    entry = catalogue.get(name)
    model_dir = tmp_path / "models"
    install_pack_file(entry, graph, model_dir, verify=False)
    assert read_manifest(model_dir / entry.pack)["installed"]["trust"] == "unverified"
    detector = detector_in(model_dir, name)
    # letterboxed into 640 x 640: a 1280 px photo at half size (a smaller one is only padded)
    side, factor = 1280, 2.0
    image = np.full((side, side, 3), 90, np.uint8)
    faces = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=10)
    assert len(faces) == 1
    (face,) = faces
    assert face.score == pytest.approx(score, abs=1e-4)
    box = [face.bbox.x1, face.bbox.y1, face.bbox.x2, face.bbox.y2]
    np.testing.assert_allclose(box, BOX * factor, atol=0.05)
    assert face.landmarks is not None and face.landmarks.shape == (5, 2)
    np.testing.assert_allclose(face.landmarks, POINTS * factor, atol=0.05)
    assert detector.detect(image, conf_threshold=0.99, iou_threshold=0.4, max_faces=10) == []
    (small,) = detector.detect(
        image[:320, :320], conf_threshold=0.5, iou_threshold=0.4, max_faces=1
    )
    np.testing.assert_allclose(small.landmarks, POINTS, atol=0.05)  # padded, never enlarged


def test_a_graph_of_another_family_is_refused(tmp_path: Path) -> None:
    """A YuNet graph offered as YOLOv5-face: refused at import (its outputs are not the
    family's), and nothing is installed."""
    from facerec.inference.pack_validation import GraphMismatchError

    graph = tiny_graph(yunet_tiny(), tmp_path / "tiny.onnx")
    model_dir = tmp_path / "models"
    entry = catalogue.get("yolov5n-0.5")
    with pytest.raises(GraphMismatchError):
        install_pack_file(entry, graph, model_dir, verify=False)
    assert not (model_dir / entry.pack).exists()


# --- the catalogue ---


def test_entries_names_and_aliases() -> None:
    for name in PACK_DETECTORS:
        entry = catalogue.get(name)
        assert entry.task == ModelTask.DETECTION and entry.installable
        (file,) = entry.files
        assert file.pinned and entry.install_name == file.name
    assert catalogue.get("yunet").files[0].url.startswith("https://github.com/opencv/opencv_zoo")
    for name in ("scrfd_500m", "scrfd_2.5g"):
        assert catalogue.get(name).licence.commercial_use is False
    for name in ("yolov8-lite-t", "yolov5n-0.5"):
        licence = catalogue.get(name).licence
        assert licence.commercial_use is True
        assert licence.name == "GPL-3.0: a user-imported pack, never bundled"
        assert not catalogue.get(name).files[0].url  # never downloaded by facerec
    assert catalogue.get("yunet").licence.name == "MIT"
    # the names reserved before keep working
    assert catalogue.get("scrfd").family == "scrfd"
    assert catalogue.get("yolov8-face").name == "yolov8-lite-t"
    assert catalogue.get("yolov5-face").name == "yolov5n-0.5"
    assert {e.name for e in catalogue.alias_targets("yolo")} == {"yolov8-lite-t", "yolov5n-0.5"}


# --- real weights ---


def bgr(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.ascontiguousarray(rgb[:, :, ::-1])


def iou(a: BBox, b: BBox) -> float:
    w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = w * h
    return inter / (a.area + b.area - inter)


@pytest.fixture(scope="module")
def retinaface() -> RetinaFaceDetector:
    model = RetinaFaceDetector()
    model.load(RuntimeOptions())
    return model


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Path:
    """Every pack detector imported with ``facerec models import`` (SHA-256 checked)."""
    model_dir = tmp_path_factory.mktemp("models")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(model_dir))
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(model_dir.parent / "logs"))
    try:
        for name, relative in SHARED_FILES.items():
            source = shared_models / relative
            if not source.is_file():
                from tests.conftest import unavailable

                unavailable(str(source), "the shared reference weights hold it")
            assert main(["models", "import", name, str(source)]) == 0
            manifest = read_manifest(model_dir / catalogue.get(name).pack)["installed"]
            assert manifest["trust"] == "pinned"
    finally:
        monkeypatch.undo()
    return model_dir


def found(detector: FaceDetector, rgb: NDArray[np.uint8]) -> list[Detection]:
    return detector.detect(bgr(rgb), conf_threshold=0.5, iou_threshold=0.4, max_faces=10)


@pytest.mark.shared_models
@pytest.mark.parametrize("name", PACK_DETECTORS)
def test_real_weights_on_real_photos(
    name: str, imported: Path, retinaface: RetinaFaceDetector
) -> None:
    detector = detector_in(imported, name)
    (grace,) = found(detector, grace_hopper_rgb())
    (reference,) = found(retinaface, grace_hopper_rgb())
    assert iou(grace.bbox, reference.bbox) > 0.6
    assert grace.landmarks is not None and reference.landmarks is not None
    left_eye, right_eye = grace.landmarks[0], grace.landmarks[1]
    assert left_eye[0] < right_eye[0]
    inter_ocular = float(np.linalg.norm(reference.landmarks[1] - reference.landmarks[0]))
    distance = np.linalg.norm(grace.landmarks - reference.landmarks, axis=1) / inter_ocular
    # Measured 0.07-0.10 on average (each point at most 0.15): RetinaFace itself sits ~6 px
    # above and left of where the five others agree, so a tighter bound would test RetinaFace.
    assert distance.mean() < 0.12 and distance.max() < 0.2, distance

    assert len(found(detector, astronaut_rgb())) == 1
    assert found(detector, np.full((240, 320, 3), 200, np.uint8)) == []
    two = found(detector, composite_rgb())
    assert len(two) == 2
    assert {face.bbox.x1 < 512 for face in two} == {True, False}


@pytest.mark.shared_models
def test_old_names_and_the_yolo_alias(imported: Path) -> None:
    settings = Settings(models={"model_dir": imported})
    models = build_models(settings)
    manager = ModelManager(
        models, settings.models, providers_available=lambda: ["CPUExecutionProvider"]
    )
    assert manager.resolve(ModelTask.DETECTION, "yolo") == "yolov5n-0.5"  # ranked first
    assert manager.resolve(ModelTask.DETECTION, "yolov8-face") == "yolov8-lite-t"
    assert manager.resolve(ModelTask.DETECTION, "scrfd") in {"scrfd_500m", "scrfd_2.5g"}
    assert manager.resolve(ModelTask.DETECTION, "yunet") == "yunet"
    (imported / "yolov5n-0.5" / "yolov5n-0.5.onnx").rename(imported / "moved.onnx")
    try:
        assert manager.resolve(ModelTask.DETECTION, "yolo") == "yolov8-lite-t"
    finally:
        (imported / "moved.onnx").rename(imported / "yolov5n-0.5" / "yolov5n-0.5.onnx")
    # auto never picks the non-commercial SCRFD by default
    assert not any(n.startswith("scrfd") for n in manager.auto_candidates(ModelTask.DETECTION))
