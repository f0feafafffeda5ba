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
        cache={"redis_url": None},
        server={"log_dir": tmp / "logs"},
        models={"model_dir": tmp / "models", "preload": ["retinaface"]},
        **overrides,  # type: ignore[arg-type]
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
