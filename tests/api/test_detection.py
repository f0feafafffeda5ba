"""Face detection through HTTP with real photos and the real RetinaFace/HOG weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.api.conftest import b64
from tests.images import (
    astronaut_png,
    astronaut_rgb,
    blank_png,
    composite_rgb,
    encode,
    grace_hopper_jpeg,
    grace_hopper_rgb,
)

# Hand-checked face regions (x1, y1, x2, y2) in each photo: the detected box must overlap them.
GRACE_FACE = (180, 110, 350, 325)
ASTRONAUT_FACE = (180, 60, 270, 175)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def box_of(face: dict[str, Any]) -> tuple[float, float, float, float]:
    b = face["bbox"]
    return (b["x1"], b["y1"], b["x2"], b["y2"])


def detect_json(client: TestClient, data: bytes, **fields: Any) -> dict[str, Any]:
    response = client.post(
        "/api/face-detection/detect",
        json={"image_base64": b64(data), "return_landmarks": True, **fields},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def detect_upload(
    client: TestClient, data: bytes, name: str = "photo", **fields: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/face-detection/detect-upload",
        files={"file": (name, data)},
        data={"return_landmarks": "true", **{k: str(v) for k, v in fields.items()}},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_one_face(body: dict[str, Any], expected: tuple[int, int, int, int]) -> None:
    assert body["success"] is True
    assert body["faces_detected"] == 1, body
    face = body["faces"][0]
    assert iou(box_of(face), expected) > 0.6, face["bbox"]
    x1, y1, x2, y2 = box_of(face)
    assert face["bbox"]["width"] == pytest.approx(x2 - x1, abs=0.02)
    marks = face["landmarks"]
    for point in marks.values():
        assert x1 <= point["x"] <= x2 and y1 <= point["y"] <= y2
    assert marks["left_eye"]["x"] < marks["right_eye"]["x"]
    assert marks["left_eye"]["y"] < marks["nose"]["y"] < marks["mouth_left"]["y"]
    assert 0 <= face["quality_score"] <= 100
    assert set(face["quality"]["factors"]) == {"size", "sharpness", "exposure", "pose", "detector"}
    assert face["confidence"] > 0.9


@pytest.mark.parametrize("via", ["json", "upload"])
def test_grace_hopper_one_face(client: TestClient, via: str) -> None:
    call = detect_json if via == "json" else detect_upload
    body = call(client, grace_hopper_jpeg())
    assert_one_face(body, GRACE_FACE)
    assert body["model_used"] == "retinaface"
    assert body["image_info"] == {"width": 512, "height": 600, "channels": 3, "format": "JPEG"}
    assert body["processing_time"] > 0


@pytest.mark.parametrize("via", ["json", "upload"])
def test_astronaut_one_face(client: TestClient, via: str) -> None:
    call = detect_json if via == "json" else detect_upload
    assert_one_face(call(client, astronaut_png()), ASTRONAUT_FACE)


@pytest.mark.parametrize("via", ["json", "upload"])
def test_composite_two_faces(client: TestClient, via: str) -> None:
    call = detect_json if via == "json" else detect_upload
    body = call(client, encode(composite_rgb(), "JPEG", quality=95))
    assert body["faces_detected"] == 2
    boxes = sorted((box_of(f) for f in body["faces"]), key=lambda b: b[0])
    assert iou(boxes[0], GRACE_FACE) > 0.6
    shifted = (
        ASTRONAUT_FACE[0] + 552,
        ASTRONAUT_FACE[1],
        ASTRONAUT_FACE[2] + 552,
        ASTRONAUT_FACE[3],
    )
    assert iou(boxes[1], shifted) > 0.6


@pytest.mark.parametrize("via", ["json", "upload"])
def test_blank_image_zero_faces(client: TestClient, via: str) -> None:
    call = detect_json if via == "json" else detect_upload
    body = call(client, blank_png())
    assert body["success"] is True
    assert body["faces_detected"] == 0
    assert body["faces"] == []


def test_upload_reports_filename_and_ignores_extension(client: TestClient) -> None:
    body = detect_upload(client, grace_hopper_jpeg(), name="misleading.gif")
    assert body["filename"] == "misleading.gif"
    assert body["faces_detected"] == 1


def test_hog_detector_by_name(client: TestClient) -> None:
    body = detect_json(client, grace_hopper_jpeg(), model_name="hog")
    assert body["model_used"] == "hog"
    assert_one_face(body, GRACE_FACE)


def test_landmarks_only_when_asked(client: TestClient) -> None:
    body = detect_json(client, grace_hopper_jpeg(), return_landmarks=False)
    assert body["faces"][0]["landmarks"] is None


def test_min_quality_filters_and_counts(client: TestClient) -> None:
    body = detect_json(client, grace_hopper_jpeg(), min_quality_threshold=100.0)
    total = body["faces_detected"] + body["faces_filtered_low_quality"]
    assert total == 1
    strict = detect_json(client, encode(composite_rgb(), "JPEG"), min_quality_threshold=0.0)
    assert strict["faces_filtered_low_quality"] == 0


def test_max_faces_keeps_the_best(client: TestClient) -> None:
    body = detect_json(client, encode(composite_rgb(), "JPEG"), max_faces=1)
    assert body["faces_detected"] == 1


def test_large_image_is_downscaled_but_boxes_stay_in_original_pixels(client: TestClient) -> None:
    big = np.asarray(Image.fromarray(grace_hopper_rgb()).resize((2048, 2400)))
    body = detect_json(client, encode(big, "JPEG", quality=90))
    scaled = tuple(v * 4 for v in GRACE_FACE)
    assert body["faces_detected"] == 1
    assert iou(box_of(body["faces"][0]), scaled) > 0.6


def test_data_url_prefix_accepted(client: TestClient) -> None:
    response = client.post(
        "/api/face-detection/detect",
        json={"image_base64": "data:image/jpeg;base64," + b64(grace_hopper_jpeg())},
    )
    assert response.status_code == 200
    assert response.json()["faces_detected"] == 1


# --- images that are unusual but valid: each must give 200 and the right answer ---------------


def exif_rotated_jpeg() -> bytes:
    """Grace Hopper stored sideways with EXIF orientation 6 (rotate 90° clockwise to view)."""
    upright = Image.fromarray(grace_hopper_rgb())
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", exif=exif, quality=95)


def test_exif_rotated_jpeg_boxes_in_upright_image(client: TestClient) -> None:
    body = detect_json(client, exif_rotated_jpeg())
    assert body["image_info"]["width"] == 512 and body["image_info"]["height"] == 600
    assert_one_face(body, GRACE_FACE)


@pytest.mark.parametrize(
    "name,data",
    [
        ("grayscale", lambda: encode(Image.fromarray(grace_hopper_rgb()).convert("L"), "PNG")),
        ("rgba", lambda: encode(Image.fromarray(grace_hopper_rgb()).convert("RGBA"), "PNG")),
        (
            "png16",
            lambda: encode(
                Image.fromarray(
                    np.asarray(Image.fromarray(grace_hopper_rgb()).convert("L")).astype(np.uint16)
                    * 257
                ),
                "PNG",
            ),
        ),
        ("cmyk", lambda: encode(Image.fromarray(grace_hopper_rgb()).convert("CMYK"), "JPEG")),
        ("bmp", lambda: encode(grace_hopper_rgb(), "BMP")),
        ("tiff", lambda: encode(grace_hopper_rgb(), "TIFF")),
        ("webp", lambda: encode(grace_hopper_rgb(), "WEBP", quality=90)),
    ],
)
def test_unusual_valid_images(client: TestClient, name: str, data: Any) -> None:
    body = detect_json(client, data())
    assert_one_face(body, GRACE_FACE)


def test_png16_is_really_16_bit() -> None:
    gray16 = np.asarray(Image.fromarray(grace_hopper_rgb()).convert("L")).astype(np.uint16) * 257
    image = Image.open(__import__("io").BytesIO(encode(Image.fromarray(gray16), "PNG")))
    assert image.mode.startswith("I")


def test_astronaut_rgb_fixture_shape() -> None:
    assert astronaut_rgb().shape == (512, 512, 3)


def big_grace(factor: int = 4) -> Image.Image:
    return Image.fromarray(grace_hopper_rgb()).resize((512 * factor, 600 * factor))


def test_large_jpeg_decoded_at_reduced_scale_keeps_original_geometry(client: TestClient) -> None:
    """A 2048x2400 JPEG is decoded by the codec at 1/2 scale for detection: boxes, landmarks,
    image_info and the quality size factor are still in the original photo's pixels."""
    body = detect_json(client, encode(big_grace(), "JPEG", quality=90))
    assert body["image_info"]["width"] == 2048 and body["image_info"]["height"] == 2400
    face = body["faces"][0]
    assert iou(box_of(face), tuple(v * 4 for v in GRACE_FACE)) > 0.6
    assert face["landmarks"]["left_eye"]["x"] > 4 * GRACE_FACE[0]
    assert face["quality"]["factors"]["size"] == 100.0


def test_large_exif_rotated_jpeg_reduced(client: TestClient) -> None:
    stored = big_grace().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    body = detect_json(client, encode(stored, "JPEG", exif=exif, quality=90))
    assert body["image_info"]["width"] == 2048 and body["image_info"]["height"] == 2400
    assert iou(box_of(body["faces"][0]), tuple(v * 4 for v in GRACE_FACE)) > 0.6


def test_reduced_decode_only_for_large_jpegs() -> None:
    from facerec.config import LimitSettings
    from facerec.inference.images import decode_image

    limits = LimitSettings()
    big = decode_image(encode(big_grace(), "JPEG"), limits, reduce_to=1024)
    assert (big.width, big.height) == (2048, 2400)
    assert big.pixels.shape[:2] == (1200, 1024) and big.scale_x == big.scale_y == 2.0
    full = decode_image(encode(big_grace(), "JPEG"), limits)
    assert full.pixels.shape[:2] == (2400, 2048) and full.scale_x == 1.0
    png = decode_image(encode(big_grace(), "PNG"), limits, reduce_to=1024)
    assert png.pixels.shape[:2] == (2400, 2048)
