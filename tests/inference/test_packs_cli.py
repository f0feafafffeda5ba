"""``facerec models pull|import|remove|verify``: where packs live, what a refusal leaves behind,
file modes, aliases, the progress bar and the graph check for detectors."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from facerec.cli import main
from facerec.config import Settings
from facerec.inference import catalogue, downloads
from facerec.inference.catalogue import (
    W600K_MBF,
    GraphSignature,
    Licence,
    ModelEntry,
    PackFile,
    TensorSignature,
)
from facerec.inference.pack_install import install_pack_file
from facerec.inference.pack_pull import pull_file_pack
from facerec.inference.pack_validation import (
    GraphMismatchError,
    check_graph,
    read_manifest,
    verify_pack,
)
from facerec.inference.types import ModelTask
from tests.inference.test_facenet_adaface import embedder_graph


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def w600k_graph(path: Path) -> Path:
    return embedder_graph(path, 112, input_name="input.1", output_name="516", batch=1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- where packs live ---


def test_default_model_dir_is_per_user_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FACEREC_MODELS__MODEL_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(tmp_path / "logs"))
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    default = tmp_path / "xdg" / "facerec" / "models"
    assert Settings().models.model_dir == default  # not relative to the working directory
    assert main(["check", "--skip-models"]) == 0  # `facerec check` creates and probes it
    assert default.is_dir()
    graph = w600k_graph(tmp_path / "g.onnx")
    assert main(["models", "import", "arcface", str(graph), "--no-verify"]) == 0
    assert (default / "w600k_mbf" / "w600k_mbf.onnx").is_file()
    assert main(["models", "list"]) == 0
    assert f"model directory: {default}" in capsys.readouterr().out
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(tmp_path / "mine"))
    assert Settings().models.model_dir == tmp_path / "mine"


# --- import: checks, nothing half-installed, modes ---


def test_refusals_leave_an_installed_pack_as_it_was(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = workdir / "models" / "w600k_mbf"
    good = w600k_graph(workdir / "good.onnx")
    assert main(["models", "import", "arcface", str(good), "--no-verify"]) == 0  # alias
    before = {p.name: p.read_bytes() for p in pack.iterdir()}
    assert sorted(before) == ["manifest.json", "w600k_mbf.onnx"]

    wrong_size = embedder_graph(
        workdir / "wrong.onnx", 160, input_name="input.1", output_name="516"
    )
    assert main(["models", "import", "w600k_mbf", str(wrong_size), "--no-verify"]) == 1
    assert "[N, 3, 112, 112]" in capsys.readouterr().out
    wrong_name = embedder_graph(workdir / "named.onnx", 112)
    assert main(["models", "import", "w600k_mbf", str(wrong_name), "--no-verify"]) == 1
    assert "no input 'input.1'" in capsys.readouterr().out
    # the right graph, but not a pinned file: refused without --no-verify
    assert main(["models", "import", "w600k_mbf", str(good)]) == 1
    assert "--no-verify" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in pack.iterdir()} == before  # no temp files either


def test_imported_and_pulled_files_are_0644(workdir: Path) -> None:
    old = os.umask(0o077)  # `facerec serve` runs with this umask
    try:
        graph = w600k_graph(workdir / "g.onnx")
        target = install_pack_file(W600K_MBF, graph, workdir / "models", verify=False)
        assert mode(target) == 0o644 and mode(target.parent / "manifest.json") == 0o644
        assert read_manifest(target.parent)["installed"]["trust"] == "unverified"

        pulled = replace(
            catalogue.MOBILEFACENET,
            name="mobilefacenet",
            files=(PackFile(name="m.onnx", url="https://example.invalid/m.onnx"),),
            install_name="m.onnx",
        )
        mfn = embedder_graph(
            workdir / "mfn.onnx", 112, dim=128, input_name="input0", output_name="output0"
        )

        def fake_download(url: str, dest: Path) -> None:
            dest.write_bytes(mfn.read_bytes())

        lines = pull_file_pack(pulled, workdir / "models", download=fake_download)
        assert "trust on first use" in "\n".join(lines)
        installed = workdir / "models" / "mobilefacenet" / "m.onnx"
        assert mode(installed) == 0o644
        assert mode(installed.parent / "manifest.json") == 0o644
    finally:
        os.umask(old)


# --- pull ---


def test_pull_without_a_download_says_where_to_get_the_weights(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "pull", "adaface"]) == 1
    out = capsys.readouterr().out
    assert "no pinned download" in out and "facerec models import adaface" in out
    assert "github.com/mk-minchul/AdaFace/releases" in out
    assert not (workdir / "models").exists()


class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_download_shows_progress_on_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = os.urandom(3 << 20)
    monkeypatch.setattr(
        downloads.urllib.request, "urlopen", lambda url, timeout: FakeResponse(data)
    )
    dest = tmp_path / "file.bin"
    downloads.download_url("https://example.invalid/file.bin", dest, progress=True)
    assert dest.read_bytes() == data
    err = capsys.readouterr().err
    assert "file.bin" in err and "3.00M" in err  # the bar, sized from Content-Length
    downloads.download_url("https://example.invalid/file.bin", dest, progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(downloads.DownloadError, match="non-HTTPS"):
        downloads.download_url("http://example.invalid/x", dest)


# --- verify and remove ---


def test_verify_reports_ok_modified_missing(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = workdir / "models"
    assert main(["models", "verify"]) == 0
    assert "no model packs installed" in capsys.readouterr().out
    graph = w600k_graph(workdir / "a.onnx")
    assert main(["models", "import", "w600k_mbf", str(graph), "--no-verify"]) == 0
    ada = embedder_graph(workdir / "ada.onnx", 112)
    assert main(["models", "import", "adaface", str(ada)]) == 0
    capsys.readouterr()
    assert main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert "w600k_mbf" in out and "adaface" in out and "modified" not in out

    with (models / "w600k_mbf" / "w600k_mbf.onnx").open("ab") as handle:
        handle.write(b"tampered")
    (models / "adaface" / "adaface.onnx").unlink()
    assert main(["models", "verify"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(x.startswith("w600k_mbf") and "modified" in x for x in lines)
    assert any(x.startswith("adaface") and "missing" in x for x in lines)

    check = verify_pack(W600K_MBF, models / "w600k_mbf")
    assert check is not None and not check.ok
    (models / "stray").mkdir()
    stray_pack = models / "mobilefacenet"
    stray_pack.mkdir()
    (stray_pack / "something.onnx").write_bytes(b"x")
    assert main(["models", "verify"]) == 1
    assert "no manifest.json" in capsys.readouterr().out

    assert main(["models", "remove", "w600k_mbf"]) == 0
    assert main(["models", "remove", "adaface"]) == 0
    assert main(["models", "remove", "mobilefacenet"]) == 0
    assert not (models / "w600k_mbf").exists() and not (models / "adaface").exists()
    assert main(["models", "remove", "adaface"]) == 0
    assert "not installed" in capsys.readouterr().out
    assert main(["models", "verify"]) == 0
    with pytest.raises(SystemExit):
        main(["models", "remove", "retinaface"])  # not a pack


# --- detectors: whatever the entry declares ---


def detector_entry(graph: GraphSignature | None) -> ModelEntry:
    return ModelEntry(
        name="fake-detector",
        task=ModelTask.DETECTION,
        family="fake",
        version="1",
        description="",
        source="pack:fake-detector",
        licence=Licence("MIT", "https://example.invalid", commercial_use=True),
        implementation=None,
        graph=graph,
    )


def test_detector_graphs_are_checked_only_as_declared(tmp_path: Path) -> None:
    graph = embedder_graph(tmp_path / "g.onnx", 640, dim=16, output_name="score_8")
    check_graph(graph, detector_entry(None))  # nothing declared: any ONNX graph
    declared = GraphSignature(
        input=TensorSignature(None, (1, 3, 640, 640)), output_names=("score_8",), output_count=1
    )
    assert check_graph(graph, detector_entry(declared)).checked_output_dim is None
    with pytest.raises(GraphMismatchError, match="lacks the outputs"):
        check_graph(graph, detector_entry(replace(declared, output_names=("score_8", "bbox_8"))))
    with pytest.raises(GraphMismatchError, match="has 1 outputs"):
        check_graph(graph, detector_entry(replace(declared, output_count=9)))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tests never download")

    monkeypatch.setattr(downloads.urllib.request, "urlopen", refuse)
    yield
