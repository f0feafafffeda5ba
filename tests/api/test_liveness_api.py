"""Anti-spoofing through HTTP with the real MiniFASNet pack (converted from ../shared/models by
the product's own converter), the liveness gate in enrollment/recognition, and the service
without the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facerec.app import create_app
from tests.api.conftest import b64, packs_settings, wait_ready
from tests.images import astronaut_png, composite_rgb, encode, grace_hopper_jpeg

LIVE = "/api/face-antispoofing"
REC = "/api/face-recognition"


def assert_live(body: dict[str, Any]) -> None:
    assert body["faces_detected"] == 1
    face = body["faces"][0]
    assert face["is_live"] is True, face
    assert face["live_score"] >= face["threshold"]
    assert set(face["per_model"]) == {"MiniFASNetV2", "MiniFASNetV1SE"}
    assert face["model_used"] == "minifasnet"
    assert face["bbox"]["width"] > 50


def test_real_photos_score_live(packs_client: TestClient) -> None:
    body = packs_client.post(LIVE + "/detect", json={"image_base64": b64(grace_hopper_jpeg())})
    assert body.status_code == 200, body.text
    assert_live(body.json())
    upload = packs_client.post(LIVE + "/detect-upload", files={"file": ("a.png", astronaut_png())})
    assert upload.status_code == 200
    assert_live(upload.json())
    assert upload.json()["filename"] == "a.png"


def test_every_face_of_a_group_photo(packs_client: TestClient) -> None:
    body = packs_client.post(
        LIVE + "/detect", json={"image_base64": b64(encode(composite_rgb(), "JPEG"))}
    ).json()
    assert body["faces_detected"] == 2
    assert all(0.0 <= f["live_score"] <= 1.0 for f in body["faces"])


def test_threshold_per_request_and_validation(packs_client: TestClient) -> None:
    strict = packs_client.post(
        LIVE + "/detect", json={"image_base64": b64(grace_hopper_jpeg()), "threshold": 1.0}
    ).json()
    assert strict["faces"][0]["threshold"] == 1.0
    assert strict["faces"][0]["is_live"] is (strict["faces"][0]["live_score"] >= 1.0)
    bad = packs_client.post(LIVE + "/detect", json={"image_base64": "x", "threshold": 2})
    assert bad.status_code == 422


def test_detection_can_include_liveness(packs_client: TestClient) -> None:
    body = packs_client.post(
        "/api/face-detection/detect",
        json={"image_base64": b64(grace_hopper_jpeg()), "check_liveness": True},
    ).json()
    assert body["faces"][0]["liveness"]["is_live"] is True


def test_enrollment_and_recognition_with_liveness(packs_client: TestClient) -> None:
    grace = b64(grace_hopper_jpeg())
    added = packs_client.post(
        REC + "/add-face",
        json={"person_name": "Grace", "face_image_base64": grace, "check_liveness": True},
    )
    assert added.status_code == 200, added.text
    assert added.json()["face"]["liveness"]["is_live"] is True
    found = packs_client.post(
        REC + "/recognize", json={"face_image_base64": grace, "check_liveness": True}
    ).json()
    assert found["face"]["liveness"]["is_live"] is True
    assert found["best_match"]["person_id"] == added.json()["person_id"]


def test_models_listing_and_metrics(packs_client: TestClient) -> None:
    models = {m["name"]: m for m in packs_client.get("/api/models").json()["models"]}
    assert models["minifasnet"]["installed"] is True and models["minifasnet"]["task"] == "liveness"
    assert models["minifasnet"]["loaded"] is True
    text = packs_client.get("/metrics").text
    assert 'facerec_inference_stage_seconds_count{model="minifasnet",stage="liveness"}' in text


def test_spoof_verdict_rejects_enrollment(tmp_path: Path, pack_model_dir: Path) -> None:
    """With a threshold no face can reach, every face is judged a spoof: the gate must refuse."""
    settings = packs_settings(tmp_path, pack_model_dir, liveness={"threshold": 1.0})
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        grace = b64(grace_hopper_jpeg())
        refused = client.post(
            REC + "/add-face",
            json={"person_name": "G", "face_image_base64": grace, "check_liveness": True},
        )
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "spoof_detected"
        assert 0.0 <= error["details"]["live_score"] < 1.0
        assert client.get(REC + "/persons").json()["persons"] == []
        many = client.post(
            REC + "/register-multiple",
            json={"full_name": "G", "employee_id": "E1", "images": [grace], "check_liveness": True},
        )
        assert many.status_code == 422
        assert many.json()["error"]["details"]["results"][0]["reason"] == "spoof_detected"
        recog = client.post(
            REC + "/recognize", json={"face_image_base64": grace, "check_liveness": True}
        )
        assert recog.status_code == 422 and recog.json()["error"]["code"] == "spoof_detected"


def test_embedding_spaces_never_mix(packs_client: TestClient) -> None:
    packs_client.post(REC + "/collections", json={"name": "spaces"})
    grace = b64(grace_hopper_jpeg())
    added = packs_client.post(
        REC + "/add-face",
        json={
            "person_name": "G",
            "face_image_base64": grace,
            "collection": "spaces",
            "model_name": "dlib_resnet",
        },
    ).json()
    assert added["model_used"] == "dlib_resnet"
    other = packs_client.post(
        REC + "/recognize",
        json={"face_image_base64": grace, "gallery": "spaces", "model_name": "mobilefacenet"},
    ).json()
    assert other["model_used"] == "mobilefacenet" and other["matches"] == []
    packs_client.post(
        REC + "/add-face",
        json={
            "person_name": "G",
            "person_id": added["person_id"],
            "face_image_base64": grace,
            "collection": "spaces",
            "model_name": "mobilefacenet",
        },
    )
    same = packs_client.post(
        REC + "/recognize",
        json={"face_image_base64": grace, "gallery": "spaces", "model_name": "mobilefacenet"},
    ).json()
    assert same["best_match"]["person_id"] == added["person_id"]


@pytest.mark.parametrize("path", ["/detect"])
def test_without_weights_liveness_is_unavailable(client: TestClient, path: str) -> None:
    """The default test app has an empty model dir: it starts, and says unavailable."""
    assert client.get("/ready").json()["ready"] is True
    response = client.post(LIVE + path, json={"image_base64": b64(grace_hopper_jpeg())})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "liveness_unavailable" and error["details"]["reason"]
    upload = client.post(LIVE + "/detect-upload", files={"file": ("g.jpg", grace_hopper_jpeg())})
    assert upload.status_code == 503
    gated = client.post(
        REC + "/add-face",
        json={
            "person_name": "G",
            "face_image_base64": b64(grace_hopper_jpeg()),
            "check_liveness": True,
        },
    )
    assert gated.status_code == 503 and gated.json()["error"]["code"] == "liveness_unavailable"
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert models["minifasnet"]["installed"] is False
    assert "minifasnet" in models["minifasnet"]["not_installed_reason"]


def test_tight_crop_gets_no_live_verdict(packs_client: TestClient) -> None:
    from PIL import Image

    from tests.images import grace_hopper_rgb

    tight = encode(Image.fromarray(grace_hopper_rgb()).crop((160, 90, 370, 345)), "PNG")
    body = packs_client.post(LIVE + "/detect", json={"image_base64": b64(tight)}).json()
    face = body["faces"][0]
    assert face["is_live"] is False and face["reason"] == "insufficient_context"
    refused = packs_client.post(
        REC + "/add-face",
        json={"person_name": "T", "face_image_base64": b64(tight), "check_liveness": True},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "liveness_insufficient_context"


def add_face(
    client: TestClient, photo: str, collection: str = "default", model: str | None = None
) -> Any:
    """Enroll ``photo`` (base64) as a new person; ``model``: the embedder named (None: auto)."""
    body = {"person_name": "G", "face_image_base64": photo, "collection": collection}
    if model is not None:
        body["model_name"] = model
    return client.post(REC + "/add-face", json=body).json()


def test_a_new_collection_takes_the_configured_default_embedder(
    tmp_path: Path, pack_model_dir: Path
) -> None:
    """``models.default_embedder`` is what ``auto`` means for a collection without faces too
    (before, a new collection took the best-ranked installed model whatever was configured),
    and it is the embedder preloaded; a collection that already holds faces of another model
    keeps answering from that model's space."""
    settings = packs_settings(tmp_path, pack_model_dir)
    settings.models.default_embedder = "dlib_resnet"  # ranked below MobileFaceNet
    settings.models.preload = ["auto"]
    grace = b64(grace_hopper_jpeg())
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        loaded = {m["name"] for m in client.get("/api/models").json()["models"] if m["loaded"]}
        assert "dlib_resnet" in loaded and "mobilefacenet" not in loaded
        client.post(REC + "/collections", json={"name": "mbf"})
        held = add_face(client, grace, "mbf", "mobilefacenet")
        fresh = add_face(client, grace)
        assert fresh["model_used"] == "dlib_resnet"
        found = client.post(
            REC + "/recognize", json={"face_image_base64": grace, "gallery": "mbf"}
        ).json()
        assert found["model_used"] == "mobilefacenet"
        assert found["best_match"]["person_id"] == held["person_id"]


def test_auto_keeps_a_collection_in_its_space(packs_client: TestClient) -> None:
    """``auto`` ranks MobileFaceNet above dlib (measured), but a collection already enrolled
    with dlib keeps answering from dlib's space instead of silently finding nobody."""
    grace = b64(grace_hopper_jpeg())
    packs_client.post(REC + "/collections", json={"name": "old-dlib"})
    packs_client.post(REC + "/collections", json={"name": "fresh"})
    old = add_face(packs_client, grace, "old-dlib", "dlib_resnet")
    found = packs_client.post(
        REC + "/recognize", json={"face_image_base64": grace, "gallery": "old-dlib"}
    ).json()
    assert found["model_used"] == "dlib_resnet"
    assert found["best_match"]["person_id"] == old["person_id"]
    more = packs_client.post(
        REC + "/add-face",
        json={"person_name": "H", "face_image_base64": grace, "collection": "old-dlib"},
    ).json()
    assert more["model_used"] == "dlib_resnet"
    fresh = packs_client.post(
        REC + "/add-face",
        json={"person_name": "G", "face_image_base64": grace, "collection": "fresh"},
    ).json()
    assert fresh["model_used"] == "mobilefacenet"
