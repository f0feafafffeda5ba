"""The command line: checks, model packs (import with SHA-256 check, list), db upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from facerec.cli import main


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEREC_MODELS__MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("FACEREC_DB__URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_prints_a_table_and_passes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    for name in (
        "python",
        "fastapi",
        "uvicorn",
        "onnxruntime",
        "opencv",
        "numpy",
        "default models",
    ):
        assert name in out
    assert "FAIL" not in out
    assert "retinaface" in out and "dlib_resnet" in out


def test_check_fails_readably_when_a_directory_is_not_writable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = workdir / "not-a-dir"
    blocker.write_text("a file where the log directory should be")
    monkeypatch.setenv("FACEREC_SERVER__LOG_DIR", str(blocker))
    assert main(["check", "--skip-models"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_import_mobilefacenet_checks_sha256(
    workdir: Path, shared_models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = shared_models / "yunet" / "face_detection_yunet_2023mar.onnx"
    assert main(["models", "import", "mobilefacenet", str(wrong)]) == 1
    assert "SHA-256" in capsys.readouterr().out
    assert not (workdir / "models" / "mobilefacenet").exists() or not any(
        (workdir / "models" / "mobilefacenet").iterdir()
    )
    right = shared_models / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx"
    assert main(["models", "import", "mobilefacenet", str(right)]) == 0
    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    line = next(x for x in listing.splitlines() if x.startswith("mobilefacenet"))
    assert "not installed" not in line and "installed" in line


def test_db_upgrade_creates_the_schema(workdir: Path) -> None:
    assert main(["db", "upgrade"]) == 0
    with sqlite3.connect(workdir / "cli.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        default = conn.execute("SELECT name FROM collections").fetchall()
    assert {"persons", "faces", "collections", "change_log"} <= tables
    assert ("default",) in default


def test_serve_parser_does_not_import_the_tools() -> None:
    """The supervisor of several workers parses only ``serve``: the tools' libraries (rich,
    httpx, the bulk CLI) stay out of its memory; every other command still sees all of them."""
    import subprocess
    import sys as _sys

    probe = (
        "import sys; from facerec.cli import build_parser; "
        "build_parser(tools=False).parse_args(['serve', '--port', '9']); "
        "print(sorted(m for m in ('facerec.bulk.cli', 'facerec.packs_cli', 'facerec.auth.cli') "
        "if m in sys.modules))"
    )
    out = subprocess.run([_sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    from facerec.cli import build_parser

    full = build_parser()
    assert full.parse_args(["enroll", "somewhere"]).command == "enroll"


def test_cores_advice_for_an_embedder_holding_the_gil(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dlib's ResNet holds the GIL: one run at a time in the process, one per helper process.
    One worker with fewer runs than cores is told what to set; several workers, one core, as
    many helpers as cores, or an embedder that lets go of the GIL are told nothing."""
    from facerec import checks
    from facerec.config import Settings
    from facerec.inference.base import RuntimeOptions
    from facerec.inference.embedders.dlib_resnet import DlibResNetEmbedder
    from facerec.inference.embedders.onnx_embedder import OnnxArcFaceEmbedder

    assert DlibResNetEmbedder().concurrent_runs(RuntimeOptions()) == 1
    assert DlibResNetEmbedder().concurrent_runs(RuntimeOptions(dlib_processes=3)) == 3
    onnx = object.__new__(OnnxArcFaceEmbedder)
    assert OnnxArcFaceEmbedder.concurrent_runs(onnx, RuntimeOptions()) is None
    monkeypatch.setattr(checks, "usable_cores", lambda: 4)
    dlib = {"default_embedder": "dlib_resnet"}
    for processes in (0, 1, 3):
        advice = checks.core_advice(Settings(models={**dlib, "dlib_processes": processes}))
        assert advice is not None, processes
        assert "dlib_resnet" in advice and "FACEREC_MODELS__DLIB_PROCESSES=4" in advice
    assert checks.core_advice(Settings(models={**dlib, "dlib_processes": 4})) is None
    assert checks.core_advice(Settings(models=dlib, server={"workers": 4})) is None
    unknown = Settings(models={"default_embedder": "no_such_model"})
    assert checks.core_advice(unknown) is None  # the default models check reports that
    monkeypatch.setattr(checks, "usable_cores", lambda: 1)
    assert checks.core_advice(Settings(models=dlib)) is None


def test_check_lists_the_cores(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("cores"))
    assert " ok " in row
