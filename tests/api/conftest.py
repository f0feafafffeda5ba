from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facerec.app import create_app
from facerec.config import Settings


def make_settings(tmp: Path, **overrides: object) -> Settings:
    settings = Settings(
        db={"url": f"sqlite+aiosqlite:///{tmp / 'facerec.db'}"},
        cache={"redis_url": None, "pending_purges_file": tmp / "pending-purges.json"},
        server={"log_dir": tmp / "logs"},
        models={"model_dir": tmp / "models", "preload": ["retinaface"]},
        **{"index": {"index_dir": tmp / "index"}, **overrides},  # type: ignore[arg-type]
    )
    return settings


def wait_ready(client: TestClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"service not ready: {client.get('/ready').json()}")


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("facerec")))
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="session")
def pack_model_dir(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Path:
    """A model dir with the MiniFASNet pack converted (needs torch) and MobileFaceNet imported,
    through the same code as ``facerec models import``."""
    from facerec.inference.catalogue import MOBILEFACENET, PACK_DIRNAME
    from facerec.inference.liveness.minifasnet_pack import convert_pack
    from facerec.inference.pack_install import install_pack_file

    model_dir = tmp_path_factory.mktemp("packs")
    convert_pack(shared_models / "minifasnet", model_dir / PACK_DIRNAME)
    install_pack_file(
        MOBILEFACENET,
        shared_models / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx",
        model_dir,
        verify=True,
    )
    return model_dir


def packs_settings(tmp: Path, model_dir: Path, **overrides: object) -> Settings:
    settings = make_settings(tmp, **overrides)
    settings.models.model_dir = model_dir
    return settings


@pytest.fixture(scope="module")
def packs_client(
    tmp_path_factory: pytest.TempPathFactory, pack_model_dir: Path
) -> Iterator[TestClient]:
    app = create_app(packs_settings(tmp_path_factory.mktemp("packs-app"), pack_model_dir))
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield test_client
