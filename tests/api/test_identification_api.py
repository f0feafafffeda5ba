"""Identification through HTTP with real photos: the right face of a photo with a bystander, the
operating point in every answer, and the enrollment guards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facerec.app import create_app
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import astronaut_png, astronaut_rgb, encode, grace_hopper_jpeg, grace_hopper_rgb

API = "/api/face-recognition"


def with_bystander() -> bytes:
    """Grace Hopper in the middle; the astronaut scaled up and cut off at the right edge: her
    face is more than half the area of Grace's, which the old rule refused as ambiguous."""
    grace = grace_hopper_rgb()
    big = np.asarray(Image.fromarray(astronaut_rgb()).resize((819, 819)))
    canvas = np.full((700, 1100, 3), 120, np.uint8)
    canvas[50:650, 294:806] = grace
    crop = big[40:340, 200:400]
    canvas[200:500, 1100 - crop.shape[1] :] = crop
    return encode(canvas, "JPEG", quality=92)


def side_by_side() -> bytes:
    return encode(np.hstack([grace_hopper_rgb(), grace_hopper_rgb()]), "JPEG")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path_factory.mktemp("ident")))) as test_client:
        wait_ready(test_client)
        yield test_client


def post(client: TestClient, path: str, status: int = 200, **body: Any) -> dict[str, Any]:
    response = client.post(API + path, json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_bystander_never_makes_a_photo_fail(client: TestClient) -> None:
    photo = b64(with_bystander())
    detected = client.post(
        "/api/face-detection/detect", json={"image_base64": photo, "min_quality_threshold": 0}
    ).json()
    assert detected["faces_detected"] == 2
    areas = sorted(f["bbox"]["width"] * f["bbox"]["height"] for f in detected["faces"])
    assert areas[0] > 0.5 * areas[1]  # what the old "clearly dominant" rule refused
    enrolled = post(
        client, "/add-face", person_name="Grace", face_image_base64=photo, collection="default"
    )
    assert enrolled["face"]["faces_in_image"] == 2
    assert 450 < enrolled["face"]["bbox"]["x1"] < 500  # Grace's face, not the bystander's
    found = post(client, "/recognize", face_image_base64=b64(grace_hopper_jpeg()))
    assert found["best_match"]["person_id"] == enrolled["person_id"]
    again = post(client, "/recognize", face_image_base64=photo)
    assert again["faces_in_image"] == 2 and again["face"]["faces_in_image"] == 2
    assert again["best_match"]["person_id"] == enrolled["person_id"]
    same = post(
        client,
        "/compare",
        face1_image_base64=photo,
        face2_image_base64=b64(grace_hopper_jpeg()),
    )
    assert same["is_same_person"] is True and same["face1"]["faces_in_image"] == 2
    assert same["false_match_rate"] is not None
    # Two people side by side: a query still answers (the most prominent face) ...
    twins = b64(side_by_side())
    query = post(client, "/recognize", face_image_base64=twins)
    assert query["faces_in_image"] == 2
    # ... but an enrollment photo with two competing faces is refused, saying which competed.
    refused = post(client, "/add-face", 422, person_name="X", face_image_base64=twins)
    error = refused["error"]
    assert error["code"] == "multiple_faces"
    assert len(error["details"]["competing"]) == 1 and "subject" in error["details"]
    assert client.delete(f"{API}/persons/{enrolled['person_id']}").status_code == 200


def test_every_answer_carries_its_operating_point(client: TestClient) -> None:
    grace = post(
        client, "/add-face", person_name="Grace", face_image_base64=b64(grace_hopper_jpeg())
    )
    answer = post(client, "/recognize", face_image_base64=b64(grace_hopper_jpeg()))
    point = answer["operating_point"]
    assert point["rule"] == "target_fpir" and point["target_fpir"] == 0.01
    assert point["gallery_size"] >= 1 and point["comparisons"] >= 1
    assert 0.0 <= point["expected_fpir"] <= 0.01
    assert point["distance_threshold"] <= 0.6  # never looser than dlib's 1:1 threshold
    assert point["decided_by"] == "threshold" and point["calibration"]
    assert answer["embedding_space"] == "dlib_resnet@1"
    stricter = post(
        client, "/recognize", face_image_base64=b64(grace_hopper_jpeg()), target_fpir=1e-6
    )["operating_point"]
    assert stricter["distance_threshold"] < point["distance_threshold"]
    assert stricter["extrapolated"] is True
    fixed = post(
        client,
        "/recognize",
        face_image_base64=b64(grace_hopper_jpeg()),
        similarity_threshold=0.7,
    )["operating_point"]
    assert fixed["rule"] == "similarity_threshold" and fixed["similarity_threshold"] == 0.7
    for bad in ({"target_fpir": 0}, {"target_fpir": 1.5}, {"min_margin": -1}):
        response = client.post(
            API + "/recognize", json={"face_image_base64": b64(grace_hopper_jpeg()), **bad}
        )
        assert response.status_code == 422, bad
    assert client.delete(f"{API}/persons/{grace['person_id']}").status_code == 200


def test_enrollment_guards(client: TestClient) -> None:
    grace = b64(grace_hopper_jpeg())
    astronaut = b64(astronaut_png())
    client.post(API + "/collections", json={"name": "guards"})
    first = post(
        client, "/add-face", person_name="Grace", face_image_base64=grace, collection="guards"
    )
    assert first["warnings"] == []
    # Someone else's photo appended to Grace: refused on request (nothing written), or flagged.
    refused = post(
        client,
        "/add-face",
        409,
        person_name="Grace",
        person_id=first["person_id"],
        face_image_base64=astronaut,
        collection="guards",
        on_inconsistent="reject",
    )
    assert refused["error"]["code"] == "inconsistent_with_person"
    person = client.get(f"{API}/persons/{first['person_id']}").json()
    assert person["person"]["face_count"] == 1
    other = post(
        client,
        "/add-face",
        person_name="Grace",
        person_id=first["person_id"],
        face_image_base64=astronaut,
        collection="guards",
    )
    assert [w["code"] for w in other["warnings"]] == ["inconsistent_with_person"]
    assert other["person"]["face_count"] == 2
    # A person belongs to exactly one collection.
    moved = post(
        client,
        "/add-face",
        409,
        person_name="Grace",
        person_id=first["person_id"],
        face_image_base64=grace,
        collection="default",
    )
    assert moved["error"]["code"] == "person_in_other_collection"
    # The same face enrolled as a new person: a possible duplicate of Grace.
    again = post(
        client, "/add-face", person_name="Grace again", face_image_base64=grace, collection="guards"
    )
    assert [w["code"] for w in again["warnings"]] == ["possible_duplicate"]
    assert again["warnings"][0]["details"]["person_id"] == first["person_id"]
    before = client.get(f"{API}/persons", params={"collection": "guards"}).json()["persons"]
    dup = post(
        client,
        "/add-face",
        409,
        person_name="Grace twice",
        face_image_base64=grace,
        collection="guards",
        on_duplicate="reject",
    )
    assert dup["error"]["code"] == "possible_duplicate"
    after = client.get(f"{API}/persons", params={"collection": "guards"}).json()["persons"]
    assert len(after) == len(before)
    # register-multiple: the photo of someone else among an employee's photos is flagged, or
    # rejected alone on request.
    crop = b64(encode(Image.fromarray(grace_hopper_rgb()).crop((60, 20, 480, 480)), "JPEG"))
    images = [grace, crop, astronaut]
    client.post(API + "/collections", json={"name": "reg"})
    warned = post(
        client,
        "/register-multiple",
        full_name="Grace H",
        employee_id="G-1",
        images=images,
        collection="reg",
    )
    assert warned["images_accepted"] == 3
    assert [w["code"] for w in warned["results"][2]["warnings"]] == ["inconsistent_with_person"]
    assert warned["results"][0]["warnings"] == [] and warned["results"][1]["warnings"] == []
    rejected = post(
        client,
        "/register-multiple",
        full_name="Grace H",
        employee_id="G-1",
        images=images,
        collection="reg",
        replace=True,
        on_inconsistent="reject",
    )
    assert rejected["images_accepted"] == 2
    assert rejected["results"][2]["reason"] == "inconsistent_with_person"
