"""MiniFASNet with the real weights (../shared/models/minifasnet): strict loading, ONNX export vs
PyTorch and vs a third-party reference export on crops of real photos, live photos scored live,
the pull path with its checksum. Converted once per session into a temporary directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from numpy.typing import NDArray

from facerec.inference.base import RuntimeOptions, onnx_session
from facerec.inference.catalogue import MINIFASNET_PACK
from facerec.inference.catalogue import ConvertedFile as PackFile
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.liveness.convert import (
    ConversionError,
    ConvertReport,
    convert_minifasnet,
    load_network,
)
from facerec.inference.liveness.minifasnet import (
    DEFAULT_THRESHOLD,
    MIN_CONTEXT_RATIO,
    MiniFASNetLiveness,
    batch_crops,
    context_ratio,
)
from facerec.inference.liveness.minifasnet_pack import (
    MANIFEST_NAME,
    ChecksumMismatchError,
    convert_pack,
    pull_pack,
)
from facerec.inference.types import ImageBGR
from facerec.values import Detection
from tests.conftest import SHARED_FACES, unavailable
from tests.images import astronaut_rgb, grace_hopper_rgb

pytestmark = pytest.mark.shared_models

V2_SPEC, V1SE_SPEC = MINIFASNET_PACK.files
REFERENCE_ONNX = "2.7_80x80_MiniFASNetV2.reference.onnx"
# float32 ONNX Runtime vs PyTorch, logits of order 1-10 (measured ~1e-5)
MAX_LOGIT_DIFF = 1e-4


@pytest.fixture(scope="session")
def weights(shared_models: Path) -> Path:
    folder = shared_models / "minifasnet"
    if not (folder / V2_SPEC.source_name).is_file():
        unavailable(f"MiniFASNet weights in {folder}", "see ../shared/models/README.md")
    return folder


@pytest.fixture(scope="session")
def converted(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> list[ConvertReport]:
    return convert_pack(weights, tmp_path_factory.mktemp("models") / "minifasnet")


@pytest.fixture(scope="session")
def model_dir(converted: list[ConvertReport]) -> Path:
    return Path(converted[0].onnx_path).parent


@pytest.fixture(scope="session")
def real_faces() -> list[tuple[str, ImageBGR, Detection]]:
    """Grace Hopper and the astronaut (BGR) with their RetinaFace box."""
    detector = RetinaFaceDetector()
    detector.load(RuntimeOptions())
    found = []
    for name, rgb in (("grace_hopper", grace_hopper_rgb()), ("astronaut", astronaut_rgb())):
        image = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        faces = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=1)
        assert faces, f"no face found in {name}"
        found.append((name, image, faces[0]))
    return found


@pytest.fixture(scope="session")
def liveness(model_dir: Path) -> Iterator[MiniFASNetLiveness]:
    model = MiniFASNetLiveness(model_dir)
    model.load(RuntimeOptions())
    yield model
    model.unload()


def real_crops(faces: list[tuple[str, ImageBGR, Detection]], spec: PackFile) -> NDArray[np.float32]:
    return np.concatenate(
        [batch_crops(image, [face], spec.scale, spec.input_size) for _, image, face in faces]
    )


def test_published_weights_load_strictly_and_export(converted: list[ConvertReport]) -> None:
    for report, spec in zip(converted, MINIFASNET_PACK.files, strict=True):
        print(report.summary())
        assert report.variant == spec.variant
        assert report.source_sha256 == spec.sha256
        assert report.ignored_keys == ()  # the published files carry no FTGenerator keys
        assert report.max_abs_diff < MAX_LOGIT_DIFF
        model = onnx.load(report.onnx_path)
        onnx.checker.check_model(model)
        assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
        batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param  # dynamic batch
    manifest = json.loads((Path(converted[0].onnx_path).parent / MANIFEST_NAME).read_text())
    assert [c["variant"] for c in manifest["converted"]] == ["MiniFASNetV2", "MiniFASNetV1SE"]


@pytest.mark.parametrize("spec", MINIFASNET_PACK.files, ids=lambda s: s.variant)
def test_onnx_matches_pytorch_on_real_face_crops(
    spec: PackFile,
    weights: Path,
    model_dir: Path,
    real_faces: list[tuple[str, ImageBGR, Detection]],
) -> None:
    crops = real_crops(real_faces, spec)
    net, _ = load_network(weights / spec.source_name, spec.variant)
    with torch.no_grad():
        expected = net(torch.from_numpy(crops)).numpy()
    session = onnx_session(model_dir / spec.onnx_name, RuntimeOptions())
    batched = session.run(None, {"input": crops})[0]
    one_by_one = np.concatenate([session.run(None, {"input": c[None]})[0] for c in crops])
    diff = float(max(np.abs(batched - expected).max(), np.abs(one_by_one - expected).max()))
    print(f"{spec.variant}: max |ONNX - PyTorch| on real crops = {diff:.2e}")
    assert batched.shape == (len(real_faces), 3)
    assert diff < MAX_LOGIT_DIFF


def test_v2_export_matches_the_third_party_reference(
    weights: Path, model_dir: Path, real_faces: list[tuple[str, ImageBGR, Detection]]
) -> None:
    crops = real_crops(real_faces, V2_SPEC)
    ours = onnx_session(model_dir / V2_SPEC.onnx_name, RuntimeOptions())
    reference = onnx_session(weights / REFERENCE_ONNX, RuntimeOptions())
    got = ours.run(None, {"input": crops})[0]
    expected = reference.run(None, {reference.get_inputs()[0].name: crops})[0]
    diff = float(np.abs(got - expected).max())
    print(f"MiniFASNetV2: max |ours - reference ONNX| on real crops = {diff:.2e}")
    assert diff < MAX_LOGIT_DIFF


def test_live_photos_score_live(
    liveness: MiniFASNetLiveness, real_faces: list[tuple[str, ImageBGR, Detection]]
) -> None:
    for name, image, face in real_faces:
        height, width = image.shape[:2]
        assert context_ratio(face.bbox, width, height) >= MIN_CONTEXT_RATIO
        (score,) = liveness.score(image, [face])
        print(f"{name}: live {score.live_score:.3f} {score.per_model}")
        assert score.live_score >= DEFAULT_THRESHOLD
        assert liveness.is_live(score)
    # both faces in one call give the same scores as one at a time
    (_, image, face) = real_faces[0]
    pair = liveness.score(image, [face, face])
    assert pair[0].live_score == pytest.approx(liveness.score(image, [face])[0].live_score)


def test_spoof_samples_score_spoof(liveness: MiniFASNetLiveness) -> None:
    folder = SHARED_FACES / "silent_face" / "images" / "sample"
    if not folder.is_dir():
        unavailable(f"spoof samples in {folder}", "set FACEREC_SHARED_FACES")
    detector = RetinaFaceDetector()
    detector.load(RuntimeOptions())
    scores = {}
    for name in ("image_F1.jpg", "image_F2.jpg", "image_T1.jpg"):
        image = np.asarray(cv2.imread(str(folder / name)), dtype=np.uint8)
        (face,) = detector.detect(image, conf_threshold=0.5, iou_threshold=0.4, max_faces=1)
        scores[name] = liveness.score(image, [face])[0].live_score
    print(scores)
    assert scores["image_F1.jpg"] < DEFAULT_THRESHOLD  # printed photo
    assert scores["image_F2.jpg"] < DEFAULT_THRESHOLD  # phone-screen replay
    assert scores["image_T1.jpg"] >= DEFAULT_THRESHOLD  # the same person, live


def _save(state: dict[str, object], path: Path) -> Path:
    torch.save(state, path)
    return path


def test_mismatching_weights_are_refused(weights: Path, tmp_path: Path) -> None:
    state = torch.load(weights / V2_SPEC.source_name, map_location="cpu", weights_only=True)
    missing = dict(state)
    del missing["module.prob.weight"]
    extra = {**state, "module.head.weight": torch.zeros(1)}
    for bad, message in (
        (_save(missing, tmp_path / "missing.pth"), "Missing key"),
        (_save(extra, tmp_path / "extra.pth"), "Unexpected key"),
        (weights / V2_SPEC.source_name, "size mismatch"),  # V2 weights in the V1SE network
    ):
        variant = "MiniFASNetV1SE" if bad.name == V2_SPEC.source_name else "MiniFASNetV2"
        with pytest.raises(ConversionError, match=message):
            convert_minifasnet(bad, tmp_path / "out.onnx", variant)
        assert not (tmp_path / "out.onnx").exists()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConversionError, match="state dict"):
        load_network(tmp_path / "junk.pth", "MiniFASNetV2")


def test_multiftnet_checkpoint_drops_the_ftgenerator(weights: Path, tmp_path: Path) -> None:
    state = torch.load(weights / V2_SPEC.source_name, map_location="cpu", weights_only=True)
    training = {"module.model." + k.removeprefix("module."): v for k, v in state.items()}
    training["module.FTGenerator.ft.0.weight"] = torch.zeros(128, 128, 3, 3)
    training["module.FTGenerator.ft.0.bias"] = torch.zeros(128)
    plain, _ = load_network(weights / V2_SPEC.source_name, "MiniFASNetV2")
    wrapped, ignored = load_network(_save(training, tmp_path / "ft.pth"), "MiniFASNetV2")
    assert ignored == ("module.FTGenerator.ft.0.weight", "module.FTGenerator.ft.0.bias")
    x = torch.rand(2, 3, 80, 80) * 255
    with torch.no_grad():
        assert torch.equal(plain(x), wrapped(x))


def test_pull_checks_sha256_then_installs(weights: Path, tmp_path: Path) -> None:
    fetched: list[str] = []

    def from_shared(url: str, dest: Path) -> None:
        fetched.append(url)
        shutil.copyfile(weights / url.rsplit("/", 1)[1], dest)

    reports = pull_pack(tmp_path / "good", download=from_shared)
    assert fetched == [spec.url for spec in MINIFASNET_PACK.files]
    assert all(r.max_abs_diff < MAX_LOGIT_DIFF for r in reports)
    assert MiniFASNetLiveness(tmp_path / "good").is_installed()
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == sorted(
        [MANIFEST_NAME, *(spec.onnx_name for spec in MINIFASNET_PACK.files)]
    )

    def tampered(url: str, dest: Path) -> None:
        from_shared(url, dest)
        with open(dest, "ab") as handle:
            handle.write(b"\0")

    with pytest.raises(ChecksumMismatchError):
        pull_pack(tmp_path / "bad", download=tampered)
    assert not MiniFASNetLiveness(tmp_path / "bad").is_installed()
    assert list((tmp_path / "bad").iterdir()) == []
