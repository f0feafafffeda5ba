"""Every kind of bad input gets a 4xx with the error envelope and a stable code; the service keeps
serving. The table in docs/errors.md lists the same cases."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from facerec.app import create_app
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import encode, grace_hopper_jpeg

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
    b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims ``width`` x ``height`` (a decompression bomb's
    header): rejected from the header alone."""
    real = encode(np.zeros((8, 8, 3), np.uint8), "PNG")
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return real[:8] + patched + real[8 + 25 :]


def envelope_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert "Traceback" not in response.text
    return body["error"]


JSON_CASES = [
    ("invalid base64", {"image_base64": "not base64 at all!!"}, 400, "invalid_base64"),
    ("empty image", {"image_base64": ""}, 400, "empty_image"),
    ("not an image", {"image_base64": b64(b"hello world, no pixels here")}, 400, "invalid_image"),
    ("gif", {"image_base64": b64(GIF)}, 415, "unsupported_format"),
    ("svg", {"image_base64": b64(SVG)}, 415, "unsupported_format"),
    ("pdf", {"image_base64": b64(PDF)}, 415, "unsupported_format"),
    ("truncated jpeg", {"image_base64": b64(grace_hopper_jpeg()[:4000])}, 400, "corrupt_image"),
    (
        "truncated png",
        {
            "image_base64": b64(
                encode(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8))[:3000]
            )
        },
        400,
        "corrupt_image",
    ),
    ("pixel bomb", {"image_base64": b64(png_claiming(100_000, 100_000))}, 413, "image_too_large"),
    (
        "1x1 image",
        {"image_base64": b64(encode(np.zeros((1, 1, 3), np.uint8)))},
        400,
        "image_too_small",
    ),
    (
        "10x10 image",
        {"image_base64": b64(encode(np.zeros((10, 10, 3), np.uint8)))},
        400,
        "image_too_small",
    ),
    (
        "negative conf",
        {"image_base64": b64(grace_hopper_jpeg()), "conf_threshold": -0.1},
        422,
        "validation_error",
    ),
    (
        "conf above 1",
        {"image_base64": b64(grace_hopper_jpeg()), "conf_threshold": 1.5},
        422,
        "validation_error",
    ),
    (
        "iou above 1",
        {"image_base64": b64(grace_hopper_jpeg()), "iou_threshold": 2},
        422,
        "validation_error",
    ),
    (
        "max_faces 0",
        {"image_base64": b64(grace_hopper_jpeg()), "max_faces": 0},
        422,
        "validation_error",
    ),
    (
        "max_faces -3",
        {"image_base64": b64(grace_hopper_jpeg()), "max_faces": -3},
        422,
        "validation_error",
    ),
    (
        "quality 101",
        {"image_base64": b64(grace_hopper_jpeg()), "min_quality_threshold": 101},
        422,
        "validation_error",
    ),
    ("missing image", {"model_name": "auto"}, 422, "validation_error"),
    ("wrong type", {"image_base64": 12345}, 422, "validation_error"),
    (
        "unknown model",
        {"image_base64": b64(grace_hopper_jpeg()), "model_name": "nope"},
        400,
        "unknown_model",
    ),
    (
        "pack not installed",
        {"image_base64": b64(grace_hopper_jpeg()), "model_name": "yunet"},
        400,
        "model_not_installed",
    ),
]


@pytest.mark.parametrize("name,payload,status,code", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_json_input(
    client: TestClient, name: str, payload: dict[str, Any], status: int, code: str
) -> None:
    response = client.post("/api/face-detection/detect", json=payload)
    assert response.status_code == status, response.text
    assert envelope_of(response)["code"] == code


def test_empty_body(client: TestClient) -> None:
    response = client.post("/api/face-detection/detect")
    assert response.status_code == 400
    assert envelope_of(response)["code"] == "empty_body"


def test_malformed_json(client: TestClient) -> None:
    response = client.post(
        "/api/face-detection/detect",
        content=b'{"image_base64": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert envelope_of(response)["code"] == "invalid_json"


UPLOAD_CASES = [
    ("gif", GIF, 415, "unsupported_format"),
    ("not an image", b"\x00\x01\x02garbage" * 10, 400, "invalid_image"),
    ("empty file", b"", 400, "empty_image"),
    ("truncated jpeg", grace_hopper_jpeg()[:5000], 400, "corrupt_image"),
    ("pixel bomb", png_claiming(60_000, 60_000), 413, "image_too_large"),
]


@pytest.mark.parametrize("name,data,status,code", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_bad_upload(client: TestClient, name: str, data: bytes, status: int, code: str) -> None:
    response = client.post("/api/face-detection/detect-upload", files={"file": ("x.jpg", data)})
    assert response.status_code == status, response.text
    assert envelope_of(response)["code"] == code


def test_upload_bad_form_fields(client: TestClient) -> None:
    response = client.post(
        "/api/face-detection/detect-upload",
        files={"file": ("x.jpg", grace_hopper_jpeg())},
        data={"max_faces": "0", "conf_threshold": "abc"},
    )
    assert response.status_code == 422
    fields = {f["field"] for f in envelope_of(response)["details"]["fields"]}
    assert fields == {"max_faces", "conf_threshold"}


def test_upload_without_file(client: TestClient) -> None:
    response = client.post("/api/face-detection/detect-upload", data={"max_faces": "3"})
    assert response.status_code == 422
    assert envelope_of(response)["code"] == "validation_error"


def test_unknown_route_and_method_use_the_envelope(client: TestClient) -> None:
    assert envelope_of(client.get("/api/nope"))["code"] == "not_found"
    response = client.get("/api/face-detection/detect")
    assert response.status_code == 405
    assert envelope_of(response)["code"] == "method_not_allowed"


def test_service_still_serves_after_bad_input(client: TestClient) -> None:
    for _, payload, _, _ in JSON_CASES:
        client.post("/api/face-detection/detect", json=payload)
    response = client.post(
        "/api/face-detection/detect", json={"image_base64": b64(grace_hopper_jpeg())}
    )
    assert response.status_code == 200
    assert response.json()["faces_detected"] == 1


@pytest.fixture(scope="module")
def small_limit_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("limits")
    settings = make_settings(tmp, limits={"max_upload_bytes": 50_000, "max_pixels": 1_000_000})
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


def test_file_over_byte_limit_json(small_limit_client: TestClient) -> None:
    data = grace_hopper_jpeg()
    assert len(data) > 50_000
    response = small_limit_client.post(
        "/api/face-detection/detect", json={"image_base64": b64(data)}
    )
    assert response.status_code == 413
    assert envelope_of(response)["code"] == "file_too_large"


def test_body_far_over_limit_rejected_before_reading(small_limit_client: TestClient) -> None:
    response = small_limit_client.post(
        "/api/face-detection/detect", json={"image_base64": "A" * 400_000}
    )
    assert response.status_code == 413
    assert envelope_of(response)["code"] == "payload_too_large"


def test_file_over_byte_limit_upload(small_limit_client: TestClient) -> None:
    response = small_limit_client.post(
        "/api/face-detection/detect-upload", files={"file": ("a.jpg", grace_hopper_jpeg())}
    )
    assert response.status_code == 413
    assert envelope_of(response)["code"] in {"file_too_large", "payload_too_large"}


def test_image_over_pixel_limit(small_limit_client: TestClient) -> None:
    wide = encode(np.zeros((600, 2000, 3), np.uint8), "PNG")  # 1.2 MP > 1 MP, few bytes
    response = small_limit_client.post(
        "/api/face-detection/detect", json={"image_base64": b64(wide)}
    )
    assert response.status_code == 413
    assert envelope_of(response)["code"] == "image_too_large"
