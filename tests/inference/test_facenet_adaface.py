"""The AdaFace and FaceNet packs without their weights (none are available here, none are faked).

Small ONNX graphs built here with each family's exact signature (a fixed linear projection of the
channel means) go through the real ``facerec models import`` path: the graph check takes the right
signature and refuses a wrong one and the other family's. Then the service's own embedder class
embeds Grace Hopper's photo through them: 512-D unit vectors, and the tensor the session receives
holds each family's preprocessing (a constant image, the session wrapped). Nothing here says
anything about accuracy: the projections are fake.

FaceNet's InceptionResnetV1 is checked against a state dict made by our own module (random
weights, saved with torch.save): strict loading refuses a missing key or a wrong shape, and
``facerec models import facenet FILE.pt`` converts and installs it. Whether upstream's
``20180402-114759-vggface2.pt`` loads is not tested here: that file is not available.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from facerec.cli import main
from facerec.config import Settings
from facerec.inference import catalogue
from facerec.inference.base import RuntimeOptions
from facerec.inference.catalogue import ADAFACE, FACENET, ModelEntry
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.embedders.onnx_embedder import OnnxArcFaceEmbedder
from facerec.inference.pack_validation import GraphMismatchError, check_graph, read_manifest
from facerec.inference.registry import build_model
from tests.images import grace_hopper_rgb


def embedder_graph(
    path: Path,
    size: int,
    *,
    dim: int = 512,
    input_name: str = "input",
    output_name: str = "embedding",
    batch: int | str = "N",
    extra_output: bool = False,
) -> Path:
    """[batch,3,size,size] → [batch,dim]: the channel means times a fixed 3 x dim matrix."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(size + dim)
    weights = rng.normal(size=(3, dim)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", [input_name, "axes"], ["means"], keepdims=0),
        helper.make_node("MatMul", ["means", "weights"], [output_name]),
    ]
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [batch, dim])]
    if extra_output:  # AdaFace exports return (feature, norm)
        nodes.append(helper.make_node("ReduceL2", [output_name], ["norm"], keepdims=1))
        outputs.append(helper.make_tensor_value_info("norm", TensorProto.FLOAT, [batch, 1]))
    graph = helper.make_graph(
        nodes,
        "fake_embedder",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, size, size])],
        outputs,
        initializer=[
            numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes"),
            numpy_helper.from_array(weights, "weights"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Recording:
    """Wraps an onnxruntime session and keeps every tensor it was fed."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.fed: list[NDArray[np.float32]] = []

    def run(self, names: list[str], feed: dict[str, NDArray[np.float32]]) -> Any:
        self.fed.extend(feed.values())
        return self.session.run(names, feed)


def installed_embedder(entry: ModelEntry, model_dir: Path) -> OnnxArcFaceEmbedder:
    model = build_model(entry, Settings(models={"model_dir": model_dir}))
    assert isinstance(model, OnnxArcFaceEmbedder)
    assert model.is_installed(), model.not_installed_reason()
    model.load(RuntimeOptions())
    return model


def grace_bgr() -> NDArray[np.uint8]:
    return np.ascontiguousarray(grace_hopper_rgb()[:, :, ::-1])


def embed_grace(embedder: OnnxArcFaceEmbedder) -> NDArray[np.float32]:
    detector = RetinaFaceDetector()
    detector.load(RuntimeOptions())
    image = grace_bgr()
    faces = detector.detect(image, conf_threshold=0.8, iou_threshold=0.4, max_faces=5)
    assert faces
    vectors = embedder.embed(image, [max(faces, key=lambda f: f.bbox.area)])
    assert vectors.shape == (1, 512) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    return vectors


def constant_chip_tensor(embedder: OnnxArcFaceEmbedder, bgr: tuple[int, int, int]) -> Any:
    """The tensor the session receives for a chip of one colour."""
    recording = Recording(embedder.session.session)
    embedder.session.session = recording
    size = embedder.spec.chip_size
    chip = np.empty((size, size, 3), np.uint8)
    chip[...] = bgr
    out = embedder.embed_chips([chip])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # The chip and its mirror (mirror sum): one run of two, or two runs of one (fixed batch).
    fed = np.concatenate(recording.fed)
    assert fed.shape == (2, 3, size, size) and fed.dtype == np.float32
    np.testing.assert_array_equal(fed[1], fed[0][..., ::-1])
    return fed[:1]


# --- the catalogue ---


def test_the_two_families_as_data() -> None:
    ada, facenet = ADAFACE.embedder_spec(), FACENET.embedder_spec()
    assert (ada.chip_size, ada.dim, ada.channels) == (112, 512, "bgr")
    assert ada.pixel_scale == pytest.approx(1 / 255) and ada.mean == ada.std == (0.5,) * 3
    assert ada.version_from_file  # which AdaFace export is installed names the space
    assert (facenet.chip_size, facenet.dim, facenet.channels) == (160, 512, "rgb")
    assert facenet.mean == (127.5,) * 3 and facenet.std == (128.0,) * 3
    assert not ADAFACE.downloadable and not ADAFACE.files[0].pinnable
    assert ADAFACE.homepage == "https://github.com/mk-minchul/AdaFace/releases"
    (pt,) = FACENET.converted_files
    assert pt.url.endswith("/releases/download/v2.2.9/20180402-114759-vggface2.pt")
    assert not pt.pinned  # upstream publishes no SHA-256: trust on first use
    assert FACENET.conversion is not None and FACENET.conversion.converter == "facenet"
    for entry in (ADAFACE, FACENET):
        assert not entry.licence.commercial_use and entry.installable
    signature = FACENET.graph_signature()
    assert signature is not None and signature.input is not None
    assert signature.input.shape == (None, 3, 160, 160)


def test_not_installed_says_how_to_get_the_weights(tmp_path: Path) -> None:
    settings = Settings(models={"model_dir": tmp_path})
    ada = build_model(ADAFACE, settings)
    assert not ada.is_installed()
    reason = ada.not_installed_reason()
    assert "facerec models import adaface" in reason and "mk-minchul/AdaFace" in reason
    assert "pull" not in reason
    facenet = build_model(FACENET, settings)
    assert "facerec models pull facenet" in facenet.not_installed_reason()


# --- graph check ---


def test_graph_check_takes_the_family_and_refuses_others(tmp_path: Path) -> None:
    ada = embedder_graph(tmp_path / "ada.onnx", 112, extra_output=True)
    report = check_graph(ada, ADAFACE)
    assert report.checked_output_dim == 512
    assert [t.name for t in report.outputs] == ["embedding", "norm"]
    facenet = embedder_graph(tmp_path / "facenet.onnx", 160)
    check_graph(facenet, FACENET)
    with pytest.raises(GraphMismatchError, match=r"\[N, 3, 112, 112\]"):
        check_graph(facenet, ADAFACE)  # a FaceNet graph is not an AdaFace one
    with pytest.raises(GraphMismatchError, match=r"\[N, 3, 160, 160\]"):
        check_graph(ada, FACENET)
    narrow = embedder_graph(tmp_path / "narrow.onnx", 112, dim=128)
    with pytest.raises(GraphMismatchError, match="512"):
        check_graph(narrow, ADAFACE)
    renamed = embedder_graph(tmp_path / "renamed.onnx", 160, input_name="data")
    with pytest.raises(GraphMismatchError, match="no input 'input'"):
        check_graph(renamed, FACENET)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a graph")
    with pytest.raises(GraphMismatchError, match="not an ONNX graph"):
        check_graph(junk, ADAFACE)


def test_graph_check_runs_symbolic_output_sizes(tmp_path: Path) -> None:
    """A graph that hides its output size behind a symbol is run once to find it out."""
    import onnx

    path = embedder_graph(tmp_path / "sym.onnx", 112, dim=256)
    model = onnx.load(str(path))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "D"
    onnx.save(model, str(path))
    with pytest.raises(GraphMismatchError, match="returned shape \\[1, 256\\]"):
        check_graph(path, ADAFACE)


# --- AdaFace through `facerec models import` and the service's embedder ---


def test_adaface_import_and_embed(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = workdir / "models"
    wrong = embedder_graph(workdir / "facenet-shaped.onnx", 160)
    assert main(["models", "import", "adaface", str(wrong)]) == 1
    assert "112" in capsys.readouterr().out
    assert not models.exists()  # a refusal leaves nothing behind, not even the folders

    graph = embedder_graph(workdir / "adaface_ir101_export.onnx", 112, extra_output=True)
    assert main(["models", "import", "adaface", str(graph)]) == 0  # nothing to pin: no flag
    assert "NOT for commercial use" in capsys.readouterr().out
    installed = read_manifest(models / "adaface")["installed"]
    assert installed["trust"] == "unverified" and installed["graph_checked"]
    assert installed["version"] == f"tofu-{installed['sha256'][:12]}"

    embedder = installed_embedder(ADAFACE, models)
    assert embedder.space == (
        f"adaface@tofu-{installed['sha256'][:12]}+align=arcface5-112+mirror=sum"
    )
    embed_grace(embedder)
    tensor = constant_chip_tensor(embedder, (10, 100, 250))
    # BGR kept, (x / 255 - 0.5) / 0.5 per channel
    expected = (np.array([10, 100, 250], np.float32) / 255 - 0.5) / 0.5
    np.testing.assert_allclose(tensor[0, :, 3, 5], expected, rtol=1e-5)
    np.testing.assert_allclose(tensor[0].reshape(3, -1).std(axis=1), 0.0, atol=1e-6)


# --- FaceNet ---


def test_facenet_onnx_import_and_embed(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = workdir / "models"
    graph = embedder_graph(workdir / "facenet.onnx", 160)
    # the pack is made from upstream's state dict: an ONNX export only with --no-verify
    assert main(["models", "import", "facenet", str(graph)]) == 1
    assert "--no-verify" in capsys.readouterr().out
    small = embedder_graph(workdir / "small.onnx", 112)
    assert main(["models", "import", "facenet", str(small), "--no-verify"]) == 1
    assert not models.exists()
    assert main(["models", "import", "facenet", str(graph), "--no-verify"]) == 0

    embedder = installed_embedder(FACENET, models)
    assert embedder.space == "facenet@20180402-114759-vggface2+align=arcface5-160+mirror=sum"
    # the ArcFace template scaled to 160 px
    np.testing.assert_allclose(embedder.template, catalogue_template(160), rtol=1e-6)
    assert embedder.chips(grace_bgr(), [grace_face()])[0].shape == (160, 160, 3)
    embed_grace(embedder)
    tensor = constant_chip_tensor(embedder, (10, 100, 250))
    # RGB, (x - 127.5) / 128
    expected = (np.array([250, 100, 10], np.float32) - 127.5) / 128
    np.testing.assert_allclose(tensor[0, :, 7, 9], expected, rtol=1e-5)


def catalogue_template(size: int) -> NDArray[np.float32]:
    from facerec.inference.align import ARCFACE_112

    return np.asarray(ARCFACE_112 * (size / 112), dtype=np.float32)


def grace_face() -> Any:
    detector = RetinaFaceDetector()
    detector.load(RuntimeOptions())
    faces = detector.detect(grace_bgr(), conf_threshold=0.8, iou_threshold=0.4, max_faces=5)
    return max(faces, key=lambda f: f.bbox.area)


@pytest.fixture(scope="module")
def own_state_dict(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dict saved from our own InceptionResnetV1 (random weights, randomised BN stats)."""
    torch = pytest.importorskip("torch", reason="pip install 'facerec[convert]'")
    from facerec.inference.embedders.facenet_net import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1()
    state = net.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            state[key] = torch.rand(value.shape) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(value.shape) * 0.1
    path = tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # as DataParallel saves it
    return path


def test_facenet_state_dict_is_loaded_strictly(own_state_dict: Path, tmp_path: Path) -> None:
    import torch

    from facerec.inference.embedders.convert_facenet import load_facenet
    from facerec.inference.liveness.convert import ConversionError

    net = load_facenet(own_state_dict)
    assert sum(p.numel() for p in net.parameters()) > 20_000_000
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 160, 160))
    assert tuple(out.shape) == (2, 512)

    state = torch.load(own_state_dict, weights_only=True)
    missing = dict(state)
    del missing["module.repeat_2.3.branch1.1.conv.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(ConversionError, match=r"repeat_2\.3\.branch1\.1\.conv\.weight"):
        load_facenet(tmp_path / "missing.pt")
    casia = dict(state)  # CASIA-WebFace's classifier has 10575 identities
    casia["module.logits.weight"] = torch.zeros(10575, 512)
    casia["module.logits.bias"] = torch.zeros(10575)
    torch.save(casia, tmp_path / "casia.pt")
    with pytest.raises(ConversionError, match="size mismatch"):
        load_facenet(tmp_path / "casia.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConversionError, match="cannot read"):
        load_facenet(tmp_path / "junk.pt")


def test_facenet_import_converts_the_state_dict(
    own_state_dict: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = workdir / "models"
    assert main(["models", "import", "facenet", str(own_state_dict)]) == 0
    out = capsys.readouterr().out
    assert "InceptionResnetV1" in out and "facenet_vggface2.onnx" in out
    pack = models / "facenet"
    assert sorted(p.name for p in pack.iterdir()) == ["facenet_vggface2.onnx", "manifest.json"]
    manifest = read_manifest(pack)
    assert manifest["installed"]["source_file"] == "20180402-114759-vggface2.pt"
    assert manifest["converted"][0]["max_abs_diff"] < 1e-4
    assert main(["models", "verify"]) == 0
    assert "ok" in capsys.readouterr().out

    embedder = installed_embedder(FACENET, models)
    embed_grace(embedder)
    # the converted graph computes what our PyTorch module does on the same chip
    import torch

    from facerec.inference.embedders.convert_facenet import load_facenet
    from facerec.inference.embedders.onnx_embedder import preprocess

    chip = embedder.chips(grace_bgr(), [grace_face()])[0]
    tensor = preprocess([chip], embedder.spec)
    with torch.no_grad():
        expected = load_facenet(own_state_dict)(torch.from_numpy(tensor)).numpy()
    (got,) = embedder.session.session.run(["embedding"], {"input": tensor})
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_entries_resolve_by_name() -> None:
    assert catalogue.get("adaface") is ADAFACE and catalogue.get("facenet") is FACENET
