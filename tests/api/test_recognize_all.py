"""recognize-all through HTTP with real photos: every face of a group photo, each identity at
most once, faces too small kept with their reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from facerec.app import create_app
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import astronaut_rgb, encode, grace_hopper_jpeg, grace_hopper_rgb

API = "/api/face-recognition"


def montage(*tiles: np.ndarray, height: int = 600) -> bytes:
    """Photos side by side on a grey canvas, each scaled to ``height``."""
    scaled = []
    for tile in tiles:
        image = Image.fromarray(tile)
        width = round(image.width * height / image.height)
        scaled.append(np.asarray(image.resize((width, height))))
    gap = np.full((height, 30, 3), 128, np.uint8)
    parts: list[np.ndarray] = []
    for tile in scaled:
        parts += [tile, gap]
    return encode(np.hstack(parts[:-1]), "JPEG", quality=92)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("all")))) as test_client:
        wait_ready(test_client)
        grace = test_client.post(
            API + "/add-face",
            json={
                "person_name": "Grace",
                "person_id": "grace",
                "face_image_base64": b64(grace_hopper_jpeg()),
            },
        )
        assert grace.status_code == 200, grace.text
        yield test_client


def tag(client: TestClient, photo: bytes, **options: Any) -> dict[str, Any]:
    response = client.post(
        API + "/recognize-all", json={"face_image_base64": b64(photo), **options}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_group_photo_with_an_enrolled_and_an_unknown_person(client: TestClient) -> None:
    result = tag(client, montage(astronaut_rgb(), grace_hopper_rgb()))
    assert result["faces_detected"] == 2 and len(result["faces"]) == 2
    by_x = sorted(result["faces"], key=lambda f: f["bbox"]["x1"])
    astronaut, grace = by_x
    assert grace["best_match"]["person_id"] == "grace" and grace["unknown"] is False
    assert astronaut["best_match"] is None and astronaut["unknown"] is True
    assert result["faces_identified"] == 1
    assert result["operating_point"]["decided_by"] == "per_face"
    assert grace["landmarks"] is not None and grace["quality"]["score"] > 0


def test_one_identity_at_most_once_per_photo(client: TestClient) -> None:
    """Two copies of Grace (one darker, mirrored): both want her; the weaker falls to unknown."""
    copy = np.asarray(
        ImageEnhance.Brightness(Image.fromarray(grace_hopper_rgb()[:, ::-1])).enhance(0.7)
    )
    result = tag(client, montage(grace_hopper_rgb(), copy))
    named = [f for f in result["faces"] if f["best_match"] is not None]
    assert [f["best_match"]["person_id"] for f in named] == ["grace"]
    loser = next(f for f in result["faces"] if f["best_match"] is None)
    assert loser["decided_by"] == "assignment"
    assert loser["candidates"] and loser["candidates"][0]["person_id"] == "grace"


def test_small_faces_are_returned_with_their_reason(client: TestClient) -> None:
    """The astronaut scaled to a 24 px face beside Grace: kept, with its reason, no identity."""
    small = np.asarray(Image.fromarray(astronaut_rgb()).resize((130, 130)))
    canvas = np.full((600, 900, 3), 128, np.uint8)
    canvas[:, :512] = grace_hopper_rgb()
    canvas[300:430, 700:830] = small
    result = tag(client, encode(canvas, "JPEG", quality=95))
    assert result["faces_detected"] == len(result["faces"]) == 2
    grace, tiny = sorted(result["faces"], key=lambda f: f["bbox"]["x1"])
    assert grace["best_match"]["person_id"] == "grace" and grace["reason"] is None
    assert tiny["reason"] == "too_small" and "too_small" in tiny["quality"]["reasons"]
    assert tiny["best_match"] is None and tiny["unknown"] is True and tiny["candidates"] == []


def test_bad_input_and_upload_variant(client: TestClient) -> None:
    missing = client.post(
        API + "/recognize-all",
        json={"face_image_base64": b64(grace_hopper_jpeg()), "collection": "nope"},
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "collection_not_found"
    invalid = client.post(API + "/recognize-all", json={"face_image_base64": "###"})
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_base64"
    upload = client.post(
        API + "/recognize-all-upload", files={"file": ("g.jpg", grace_hopper_jpeg())}
    )
    assert upload.status_code == 200
    assert upload.json()["faces"][0]["best_match"]["person_id"] == "grace"
