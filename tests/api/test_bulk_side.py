"""Bulk enrollment with its defaults: faces located at the smaller bulk detector side (320 px),
a face that side cannot resolve detected again at the service's scale on a crop around it, and model
sessions of its own (one onnxruntime thread each), on the real models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import b64, make_settings
from tests.api.test_bulk_enrollment import batch, serving_with_mobilefacenet, stored_vectors
from tests.images import encode, grace_hopper_jpeg, grace_hopper_rgb

API = "/api/face-recognition"


@pytest.fixture(scope="module")
def side_client(
    tmp_path_factory: pytest.TempPathFactory, shared_models: Path
) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("bulk-side"))
    assert settings.limits.bulk_detect_max_side == 320  # the defaults under test
    assert settings.models.bulk_intra_op_threads == 1
    yield from serving_with_mobilefacenet(settings, shared_models)


def small_face() -> bytes:
    """Grace Hopper at her own size on a 1600 × 1200 canvas: her face is ~45 px tall at 320 px,
    ~150 px at the service's 1024."""
    canvas = np.full((1200, 1600, 3), 120, np.uint8)
    face = grace_hopper_rgb()
    canvas[300 : 300 + face.shape[0], 500 : 500 + face.shape[1]] = face
    return encode(canvas, "JPEG", quality=95)


def single_vector(client: TestClient, photo: bytes, collection: str) -> np.ndarray:
    answer = client.post(
        API + "/add-face",
        json={
            "person_name": "single",
            "face_image_base64": b64(photo),
            "model_name": "mobilefacenet",
            "collection": collection,
        },
    )
    assert answer.status_code == 200, answer.text
    return stored_vectors(client, answer.json()["person_id"])[0]


def bulk_vector(client: TestClient, photo: bytes, collection: str) -> np.ndarray:
    body: dict[str, Any] = batch(
        client,
        collection=collection,
        model_name="mobilefacenet",
        persons=[{"person_name": "bulk", "images": [b64(photo)]}],
    )
    person = body["results"][0]
    assert person["images_accepted"] == 1, person
    got = stored_vectors(client, person["person"]["person_id"])
    assert len(got) == 1
    return got[0]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_a_face_the_bulk_side_resolves_is_embedded_from_it(side_client: TestClient) -> None:
    side_client.post(API + "/collections", json={"name": "side-large"})
    photo = grace_hopper_jpeg()  # 512 × 600: her face is ~130 px tall at 320 px
    single = single_vector(side_client, photo, "side-large")
    bulk = bulk_vector(side_client, photo, "side-large")
    assert cosine_distance(single, bulk) < 0.1  # the same face; landmarks of another scale


def test_a_face_too_small_for_the_bulk_side_is_detected_at_the_service_scale(
    side_client: TestClient,
) -> None:
    side_client.post(API + "/collections", json={"name": "side-small"})
    photo = small_face()
    single = single_vector(side_client, photo, "side-small")
    bulk = bulk_vector(side_client, photo, "side-small")
    # Detected again at the 1024 px scale on a crop around her: 0.001 from single enrollment's
    # vector (her landmarks at 320 px would give 0.038).
    assert cosine_distance(single, bulk) < 0.005


def test_bulk_runs_sessions_of_its_own(side_client: TestClient) -> None:
    state = side_client.app.state.facerec  # type: ignore[attr-defined]
    assert state.bulk_models is not None and state.bulk_models is not state.models
    assert state.bulk_models.runtime.intra_op_threads == 1
    assert state.models.runtime.intra_op_threads == 2
    side_client.post(API + "/collections", json={"name": "side-sessions"})
    bulk_vector(side_client, grace_hopper_jpeg(), "side-sessions")
    listed = side_client.get(API.replace("/face-recognition", "") + "/models").json()
    assert listed["bulk_memory_bytes"] > 0
    assert listed["memory_loaded_bytes"] >= listed["bulk_memory_bytes"]


def test_an_empty_bulk_side_means_the_service_side(monkeypatch: pytest.MonkeyPatch) -> None:
    from facerec.config import Settings

    monkeypatch.setenv("FACEREC_LIMITS__BULK_DETECT_MAX_SIDE", "")
    assert Settings(_env_file=None).limits.bulk_detect_max_side is None
    monkeypatch.setenv("FACEREC_LIMITS__BULK_DETECT_MAX_SIDE", "480")
    assert Settings(_env_file=None).limits.bulk_detect_max_side == 480


def test_only_onnxruntime_models_get_a_second_session(side_client: TestClient) -> None:
    state = side_client.app.state.facerec  # type: ignore[attr-defined]
    assert state.bulk_manager("mobilefacenet") is state.bulk_models
    assert state.bulk_manager("dlib_resnet") is state.models  # dlib's weights are held once
    assert state.bulk_manager("no-such-model") is state.models  # which answers unknown_model
    # preloaded (retinaface, in these tests' settings) for bulk too: no first batch waits
    assert state.bulk_models.peek("retinaface").loaded


def test_bulk_sessions_have_their_own_metric_series(side_client: TestClient) -> None:
    text = side_client.get("/metrics").text
    assert 'facerec_model_events_total{event="load",model="bulk:retinaface"} 1.0' in text
    assert 'facerec_model_events_total{event="load",model="retinaface"} 1.0' in text
