"""The model catalogue: every entry consistent, ``auto`` and aliases derived from it, licences
honoured; the w600k_mbf packs imported through ``facerec models import`` and embedding a real
photo with their real weights (../shared/models/arcface)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageOps

from facerec.cli import main
from facerec.config import Settings
from facerec.errors import ModelNotAvailableError
from facerec.inference import catalogue
from facerec.inference.base import FaceEmbedder, RuntimeOptions
from facerec.inference.catalogue import W600K_MBF, W600K_MBF_INT8, ModelEntry
from facerec.inference.detectors.retinaface import RetinaFaceDetector
from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
from facerec.inference.embedders.onnx_embedder import (
    MOBILEFACENET_SPEC,
    W600K_MBF_SPEC,
    OnnxArcFaceEmbedder,
)
from facerec.inference.manager import ModelManager
from facerec.inference.pack_install import install_pack_file
from facerec.inference.pack_pull import pull_file_pack
from facerec.inference.pack_validation import MANIFEST_NAME, read_manifest
from facerec.inference.registry import build_models
from facerec.inference.types import ModelTask
from facerec.values import Detection
from tests.images import astronaut_rgb, composite_rgb, grace_hopper_rgb

FP32 = "w600k_mbf_fp32_from_int8.onnx"
INT8 = "w600k_mbf_int8.onnx"
MOBILEFACENET_FILE = "mobilefacenet_foamliu_opset18.onnx"


# --- the catalogue as data ---


def test_every_entry_is_consistent() -> None:
    names = [e.name for e in catalogue.entries()]
    assert len(names) == len(set(names))
    assert not set(names) & catalogue.aliases(), "an alias shadows a model name"
    for entry in catalogue.entries():
        assert catalogue.get(entry.name) is entry
        assert entry.source.startswith(("pypi:", "pack:")), entry.name
        assert entry.licence.name and isinstance(entry.licence.commercial_use, bool)
        if not entry.reserved:
            assert entry.licence.url.startswith("https://"), entry.name
            assert entry.version, entry.name
        for file in entry.files:
            assert not file.url or file.url.startswith("https://"), file
            assert not file.sha256 or (len(file.sha256) == 64 and int(file.sha256, 16) >= 0)
            assert file.url or file.sha256 or not file.pinnable, f"{file.name}: unreachable"
        if entry.implementation == "onnx_embedder":
            spec = entry.embedder_spec()
            assert (spec.name, spec.pack, spec.license) == (entry.name, entry.pack, entry.license)
            assert spec.file_name == entry.install_name and spec.files == entry.files
            assert spec.dim > 0 and spec.distance_threshold > 0 and spec.similarity_scale > 0
            assert len(entry.files) == 1 or spec.version_from_file, entry.name
        if entry.conversion is not None:
            assert entry.converted_files == entry.files
        info = entry.model_info()
        assert (info.name, info.license, info.commercial_use) == (
            entry.name,
            entry.licence.name,
            entry.licence.commercial_use,
        )
    assert [e.name for e in catalogue.packs()] == [
        "mobilefacenet",
        "w600k_mbf",
        "w600k_mbf_int8",
        "minifasnet",
        "scrfd_2.5g",
        "scrfd_500m",
        "yunet",
        "yolov8-lite-t",
        "yolov5n-0.5",
        "adaface",
        "facenet",
    ]


def test_auto_order_and_aliases() -> None:
    # Measured (BENCHMARKS.md, detectors); auto skips the non-commercial SCRFD.
    assert catalogue.auto_order(ModelTask.DETECTION) == [
        "retinaface",
        "scrfd_2.5g",
        "scrfd_500m",
        "yolov5n-0.5",
        "yolov8-lite-t",
        "yunet",
        "hog",
    ]
    # Measured order (BENCHMARKS.md, identification); auto skips the non-commercial ones.
    assert catalogue.auto_order(ModelTask.EMBEDDING) == [
        "w600k_mbf",
        "w600k_mbf_int8",
        "mobilefacenet",
        "dlib_resnet",
        "adaface",
        "facenet",
    ]
    assert catalogue.auto_order(ModelTask.LIVENESS) == ["minifasnet"]
    assert catalogue.get("arcface") is W600K_MBF
    assert catalogue.alias_targets("arcface") == [W600K_MBF, W600K_MBF_INT8]
    assert catalogue.find("nope") is None
    with pytest.raises(KeyError):
        catalogue.get("nope")


def test_licences() -> None:
    for entry in (W600K_MBF, W600K_MBF_INT8, catalogue.get("scrfd")):
        assert entry.licence.name == "InsightFace weights: non-commercial research only"
        assert entry.licence.commercial_use is False
    for name in ("retinaface", "hog", "dlib_resnet", "mobilefacenet", "minifasnet"):
        assert catalogue.get(name).licence.commercial_use is True
    # auto's first commercial-use choice of each task (what it takes by default)
    first_free = {
        task: next(n for n in catalogue.auto_order(task) if catalogue.get(n).licence.commercial_use)
        for task in ModelTask
    }
    assert first_free == {
        ModelTask.DETECTION: "retinaface",
        ModelTask.EMBEDDING: "mobilefacenet",
        ModelTask.LIVENESS: "minifasnet",
    }


def test_w600k_pack_data() -> None:
    spec = W600K_MBF_SPEC
    assert (spec.dim, spec.input_name, spec.output_name) == (512, "input.1", "516")
    assert spec.channels == "rgb" and spec.mean == (127.5,) * 3 and spec.std == (127.5,) * 3
    assert spec.pixel_scale == 1.0 and spec.any_batch and spec.version_from_file
    upstream, fp32 = W600K_MBF.files
    assert upstream.url.endswith("/v0.7/buffalo_sc.zip") and upstream.member == "w600k_mbf.onnx"
    assert not upstream.pinned  # trust on first use
    assert fp32.name == FP32 and not fp32.url and fp32.pinned
    (int8,) = W600K_MBF_INT8.files
    assert int8.sha256 == "7caa7fb0ad6c37b33e6c59f6411084b487aaabd596bba645d2cce391a5871120"
    assert W600K_MBF.file_version(fp32.sha256) == "fp32-from-int8"
    assert W600K_MBF.file_version("ab" * 32) == "tofu-" + "ab" * 6


# --- embedding spaces ---


def test_default_spaces_keep_their_old_ids() -> None:
    assert DlibResNetEmbedder().space == "dlib_resnet@1"
    assert DlibResNetEmbedder(num_jitters=1).space == "dlib_resnet@1"
    assert (
        DlibResNetEmbedder(alignment="shape_predictor").space == "dlib_resnet@1+align=chip150+jit=1"
    )
    assert DlibResNetEmbedder(num_jitters=5).space == "dlib_resnet@1+align=sim5-150+jit=5"
    tmp = Path("/nonexistent")
    assert OnnxArcFaceEmbedder(MOBILEFACENET_SPEC, tmp).space == "mobilefacenet@foamliu-1"
    no_mirror = OnnxArcFaceEmbedder(replace(MOBILEFACENET_SPEC, mirror_sum=False), tmp)
    assert no_mirror.space == "mobilefacenet@foamliu-1+align=arcface5-112+mirror=off"


def test_w600k_space_names_the_installed_file(tmp_path: Path, shared_models: Path) -> None:
    model_dir = linked_model_dir(tmp_path, shared_models)
    w600k = OnnxArcFaceEmbedder(W600K_MBF_SPEC, model_dir)
    assert w600k.version == "fp32-from-int8"
    assert w600k.space == "w600k_mbf@fp32-from-int8+align=arcface5-112+mirror=sum"
    int8 = OnnxArcFaceEmbedder(W600K_MBF_INT8.embedder_spec(), model_dir)
    assert int8.space == "w600k_mbf_int8@offlineid-int8+align=arcface5-112+mirror=sum"
    # another file in the same place is another embedding space
    other = tmp_path / "other"
    (other / "w600k_mbf").mkdir(parents=True)
    (other / "w600k_mbf" / "w600k_mbf.onnx").write_bytes(b"not the known file")
    sha = hashlib.sha256(b"not the known file").hexdigest()
    assert OnnxArcFaceEmbedder(W600K_MBF_SPEC, other).version == f"tofu-{sha[:12]}"


# --- the manager with models built from settings ---


def linked_model_dir(tmp_path: Path, shared_models: Path, *, mobilefacenet: bool = False) -> Path:
    """A model dir holding the shared weights (symlinked) in the pack layout."""
    model_dir = tmp_path / "models"
    links = {
        "w600k_mbf/w600k_mbf.onnx": shared_models / "arcface" / FP32,
        "w600k_mbf_int8/w600k_mbf_int8.onnx": shared_models / "arcface" / INT8,
    }
    if mobilefacenet:
        links[f"mobilefacenet/{MOBILEFACENET_FILE}"] = (
            shared_models / "mobilefacenet" / MOBILEFACENET_FILE
        )
    for relative, target in links.items():
        if not target.is_file():
            pytest.skip(f"{target} is missing")
        link = model_dir / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    return model_dir


def manager_for(model_dir: Path, *, allow: bool, keep: set[str] | None = None) -> ModelManager:
    settings = Settings(models={"model_dir": model_dir, "allow_non_commercial": allow})
    models = build_models(settings)
    if keep is not None:
        models = {name: model for name, model in models.items() if name in keep}
    return ModelManager(
        models, settings.models, providers_available=lambda: ["CPUExecutionProvider"]
    )


def test_auto_never_picks_non_commercial_unless_allowed(
    tmp_path: Path, shared_models: Path
) -> None:
    model_dir = linked_model_dir(tmp_path, shared_models, mobilefacenet=True)
    everything = manager_for(model_dir, allow=False)
    assert sorted(everything.installed(ModelTask.EMBEDDING)) == [
        "dlib_resnet",
        "mobilefacenet",
        "w600k_mbf",
        "w600k_mbf_int8",
    ]
    # the best measured model licensed for commercial use
    assert everything.resolve(ModelTask.EMBEDDING, "auto") == "mobilefacenet"
    assert everything.resolve(ModelTask.DETECTION, None) == "retinaface"
    # explicit names and the alias work whatever the licence
    assert everything.resolve(ModelTask.EMBEDDING, "w600k_mbf") == "w600k_mbf"
    assert everything.resolve(ModelTask.EMBEDDING, "w600k_mbf_int8") == "w600k_mbf_int8"
    assert everything.resolve(ModelTask.EMBEDDING, "arcface") == "w600k_mbf"

    arcface_only = {"w600k_mbf", "w600k_mbf_int8"}
    refused = manager_for(model_dir, allow=False, keep=arcface_only)
    with pytest.raises(ModelNotAvailableError) as info:
        refused.resolve(ModelTask.EMBEDDING, "auto")
    assert info.value.code == "model_not_installed"
    assert "ALLOW_NON_COMMERCIAL" in info.value.message
    assert refused.auto_candidates(ModelTask.EMBEDDING) == []
    allowed = manager_for(model_dir, allow=True, keep=arcface_only)
    assert allowed.resolve(ModelTask.EMBEDDING, "auto") == "w600k_mbf"
    with_mobilefacenet = manager_for(model_dir, allow=False, keep=arcface_only | {"mobilefacenet"})
    assert with_mobilefacenet.resolve(ModelTask.EMBEDDING, "auto") == "mobilefacenet"

    status = {s.name: s for s in everything.status()}
    assert status["w600k_mbf"].commercial_use is False and status["w600k_mbf"].installed
    assert status["w600k_mbf"].version == "fp32-from-int8"
    assert status["w600k_mbf"].aliases == ("arcface",)
    assert status["dlib_resnet"].commercial_use is True
    assert status["scrfd_500m"].installed is False


def test_alias_with_only_the_int8_pack_and_with_none(tmp_path: Path, shared_models: Path) -> None:
    model_dir = linked_model_dir(tmp_path, shared_models)
    (model_dir / "w600k_mbf" / "w600k_mbf.onnx").unlink()
    manager = manager_for(model_dir, allow=False)
    assert manager.resolve(ModelTask.EMBEDDING, "arcface") == "w600k_mbf_int8"
    (model_dir / "w600k_mbf_int8" / "w600k_mbf_int8.onnx").unlink()
    with pytest.raises(ModelNotAvailableError) as info:
        manager.resolve(ModelTask.EMBEDDING, "arcface")
    assert info.value.code == "model_not_installed"
    with pytest.raises(ModelNotAvailableError) as unknown:
        manager.resolve(ModelTask.DETECTION, "arcface")
    assert unknown.value.code == "unknown_model"


def test_embedders_get_their_calibration(tmp_path: Path) -> None:
    from facerec.inference.calibration import load_calibrations

    calibrations = load_calibrations()
    models = build_models(Settings(models={"model_dir": tmp_path}))
    for name, model in models.items():
        if isinstance(model, FaceEmbedder):
            assert model.calibration == calibrations.get(name)


# --- facerec models import / pull ---


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_import_w600k_packs_checks_sha256(
    workdir: Path, shared_models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arcface = shared_models / "arcface"
    models = workdir / "models"
    # the int8 file is not the w600k_mbf pack's file: refused, nothing written
    assert main(["models", "import", "w600k_mbf", str(arcface / INT8)]) == 1
    out = capsys.readouterr().out
    assert "SHA-256" in out and "--no-verify" in out
    assert not (models / "w600k_mbf").exists() or not any((models / "w600k_mbf").iterdir())

    assert main(["models", "import", "w600k_mbf", str(arcface / FP32)]) == 0
    assert "NOT for commercial use" in capsys.readouterr().out
    installed = models / "w600k_mbf" / "w600k_mbf.onnx"
    assert installed.read_bytes() == (arcface / FP32).read_bytes()
    manifest = read_manifest(models / "w600k_mbf")["installed"]
    assert manifest["trust"] == "pinned" and manifest["known_file"] == FP32
    assert manifest["version"] == "fp32-from-int8"

    assert main(["models", "import", "w600k_mbf_int8", str(arcface / FP32)]) == 1
    assert not (models / "w600k_mbf_int8").exists()
    assert main(["models", "import", "w600k_mbf_int8", str(arcface / INT8)]) == 0
    capsys.readouterr()

    # a refused file leaves an installed pack untouched
    assert main(["models", "import", "w600k_mbf", str(arcface / INT8)]) == 1
    assert installed.read_bytes() == (arcface / FP32).read_bytes()
    assert sorted(p.name for p in (models / "w600k_mbf").iterdir()) == [
        MANIFEST_NAME,
        "w600k_mbf.onnx",
    ]

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    line = next(x for x in listing.splitlines() if x.startswith("w600k_mbf "))
    assert "NON-COMMERCIAL" in line and "not installed" not in line and "arcface" in line
    assert "non-commercial research only" in listing


def test_pull_records_an_unpinned_file_on_first_use(tmp_path: Path, shared_models: Path) -> None:
    # upstream's float32 file is not in shared/models: any bytes the pack does not know will do
    fp32 = (shared_models / "arcface" / INT8).read_bytes()
    served = {"bytes": fp32}

    def fake_download(url: str, dest: Path) -> None:  # buffalo_sc.zip with w600k_mbf.onnx inside
        assert url == catalogue.BUFFALO_SC_URL
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("det_500m.onnx", b"detector")
            archive.writestr("w600k_mbf.onnx", served["bytes"])
        dest.write_bytes(buffer.getvalue())

    model_dir = tmp_path / "models"
    first = "\n".join(pull_file_pack(W600K_MBF, model_dir, download=fake_download))
    assert "trust on first use" in first
    recorded = json.loads((model_dir / "w600k_mbf" / MANIFEST_NAME).read_text())["installed"]
    sha = hashlib.sha256(fp32).hexdigest()
    assert recorded["sha256"] == sha and recorded["trust"] == "trust-on-first-use"
    assert recorded["version"] == f"tofu-{sha[:12]}"
    assert OnnxArcFaceEmbedder(W600K_MBF_SPEC, model_dir).version == f"tofu-{sha[:12]}"
    # a later pull of the same bytes passes; changed bytes are refused and change nothing
    assert "matches" in "\n".join(pull_file_pack(W600K_MBF, model_dir, download=fake_download))
    served["bytes"] = fp32[:-1] + b"\0"
    from facerec.inference.liveness.minifasnet_pack import ChecksumMismatchError

    with pytest.raises(ChecksumMismatchError, match="first pull"):
        pull_file_pack(W600K_MBF, model_dir, download=fake_download)
    assert (model_dir / "w600k_mbf" / "w600k_mbf.onnx").read_bytes() == fp32


def test_install_refuses_unknown_file_without_writing(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"x")
    from facerec.inference.liveness.minifasnet_pack import ChecksumMismatchError

    with pytest.raises(ChecksumMismatchError):
        install_pack_file(W600K_MBF_INT8, bogus, tmp_path / "models")
    assert not (tmp_path / "models").exists()
    from facerec.inference.pack_validation import GraphMismatchError

    # --no-verify skips the SHA-256 check, never the graph's (tests/inference/test_packs_cli.py)
    with pytest.raises(GraphMismatchError):
        install_pack_file(W600K_MBF_INT8, bogus, tmp_path / "models", verify=False)
    assert not (tmp_path / "models").exists()


# --- real weights ---


def bgr(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return np.ascontiguousarray(rgb[:, :, ::-1])


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    model = RetinaFaceDetector()
    model.load(RuntimeOptions())
    return model


def largest_face(detector: RetinaFaceDetector, image: NDArray[np.uint8]) -> Detection:
    found = detector.detect(image, conf_threshold=0.8, iou_threshold=0.4, max_faces=10)
    assert found, "the detector found no face"
    return max(found, key=lambda f: f.bbox.area)


def embed(embedder: FaceEmbedder, detector: RetinaFaceDetector, rgb: NDArray[np.uint8]) -> Any:
    image = bgr(rgb)
    vectors = embedder.embed(image, [largest_face(detector, image)])
    assert vectors.shape == (1, 512) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    return vectors[0]


def loaded_pack(entry: ModelEntry, tmp_path: Path, shared_models: Path) -> OnnxArcFaceEmbedder:
    embedder = OnnxArcFaceEmbedder(entry.embedder_spec(), linked_model_dir(tmp_path, shared_models))
    assert embedder.is_installed(), embedder.not_installed_reason()
    embedder.load(RuntimeOptions())
    return embedder


@pytest.mark.shared_models
@pytest.mark.parametrize("entry", [W600K_MBF, W600K_MBF_INT8], ids=lambda e: e.name)
def test_w600k_real_weights(
    entry: ModelEntry, tmp_path: Path, shared_models: Path, detector: RetinaFaceDetector
) -> None:
    embedder = loaded_pack(entry, tmp_path, shared_models)
    # the graph says 1 and batches run whole, except where int8 activations are quantised per
    # batch: there a face's vector would depend on its neighbours
    assert embedder.session.fixed_batch == (None if entry is W600K_MBF else 1)
    grace = embed(embedder, detector, grace_hopper_rgb())
    assert abs(float(np.linalg.norm(grace)) - 1.0) < 1e-4
    photo = Image.fromarray(grace_hopper_rgb())
    mirrored = np.asarray(ImageOps.mirror(photo))
    scaled = np.asarray(photo.resize((photo.width * 9 // 10, photo.height * 9 // 10)))
    astronaut = embed(embedder, detector, astronaut_rgb())
    for variant in (mirrored, scaled):
        other = embed(embedder, detector, variant)
        assert abs(float(np.linalg.norm(other)) - 1.0) < 1e-4
        assert embedder.distance(grace, other) < 0.3
    assert embedder.distance(grace, astronaut) > 0.6

    image = bgr(composite_rgb())
    faces = detector.detect(image, conf_threshold=0.8, iou_threshold=0.4, max_faces=10)
    assert len(faces) == 2
    batch = embedder.embed(image, faces)
    singles = np.stack([embedder.embed(image, [face])[0] for face in faces])
    np.testing.assert_allclose(batch, singles, atol=1e-4)
