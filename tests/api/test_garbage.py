"""Garbage in, 4xx out: every POST route gets malformed bodies of many shapes (seeded, bounded)
and must answer with the error envelope, never a 5xx."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import b64
from tests.images import grace_hopper_jpeg

# Bodies per route; raise it for a longer hunt: FACEREC_GARBAGE_ITERATIONS=300 (none found at 300).
ITERATIONS = int(os.environ.get("FACEREC_GARBAGE_ITERATIONS", "20"))
JSON_ROUTES = [
    "/api/face-detection/detect",
    "/api/face-recognition/add-face",
    "/api/face-recognition/register-multiple",
    "/api/face-recognition/recognize",
    "/api/face-recognition/compare",
    "/api/face-antispoofing/detect",
    "/api/face-recognition/collections",
]
UPLOAD_ROUTES = [
    "/api/face-detection/detect-upload",
    "/api/face-recognition/add-face-upload",
    "/api/face-recognition/recognize-upload",
    "/api/face-recognition/compare-upload",
    "/api/face-antispoofing/detect-upload",
]
FIELDS = [
    "image_base64",
    "face_image_base64",
    "face1_image_base64",
    "face2_image_base64",
    "images",
    "person_name",
    "person_id",
    "full_name",
    "employee_id",
    "gallery",
    "model_name",
    "top_k",
    "similarity_threshold",
    "max_faces",
    "conf_threshold",
    "metadata",
    "collection",
    "name",
    "processing_mode",
    "check_liveness",
    "replace",
    "threshold",
]


def acceptable(response: Any) -> bool:
    """A 4xx, or the documented 503 when liveness is asked for and its pack is not installed."""
    if response.status_code < 500:
        return True
    error = response.json().get("error", {})
    return bool(response.status_code == 503 and error.get("code") == "liveness_unavailable")


def garbage(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        None,
        True,
        -1,
        0,
        10**12,
        -1e308,
        1.5,
        "",
        "x" * rng.randint(1, 300),
        "../../etc/passwd",
        "data:image/png;base64,",
        "\x00",
        b64(bytes(rng.randrange(256) for _ in range(40))),
        b64(grace_hopper_jpeg()[: rng.randint(1, 3000)]),
        "auto",
        "default",
    ]
    if depth < 2:
        choices += [[garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))]]
        choices += [{rng.choice(FIELDS): garbage(rng, depth + 1)}]
    return rng.choice(choices)


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_json_garbage_never_5xx(client: TestClient, route: str) -> None:
    rng = random.Random(route)
    for _ in range(ITERATIONS):
        body = {field: garbage(rng) for field in rng.sample(FIELDS, rng.randint(0, 6))}
        response = client.post(route, json=body)
        assert acceptable(response), (body, response.text)
        if response.status_code >= 400:
            assert response.json()["success"] is False
    for raw in (b"", b"[]", b"null", b'"x"', b"{", b"\xff\xfe", b"{}" * 1000):
        response = client.post(route, content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (raw, response.text)


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
def test_upload_garbage_never_5xx(client: TestClient, route: str) -> None:
    rng = random.Random(route)
    names = ["file", "file1", "file2"]
    for _ in range(ITERATIONS):
        files = {
            name: ("x.jpg", bytes(rng.randrange(256) for _ in range(rng.randint(0, 400))))
            for name in names
        }
        data = {field: str(garbage(rng))[:200] for field in rng.sample(FIELDS, rng.randint(0, 4))}
        response = client.post(route, files=files, data=data)
        assert acceptable(response), (data, response.text)
    response = client.post(
        route, content=b"--broken", headers={"content-type": "multipart/form-data"}
    )
    assert 400 <= response.status_code < 500, response.text
