"""Bounded memory and time per request ("safe to expose"): decompression bombs of every format
and bit depth, truncations, EXIF oddities and polyglots through every image route (4xx with the
envelope, never a 5xx); body limits with and without Content-Length; the request's peak memory in
a real server; metrics labels; cross-origin rules; 5xx responses closing the connection."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from facerec.api.errors import envelope
from facerec.app import create_app
from facerec.config import LimitSettings
from facerec.errors import PayloadTooLargeError
from facerec.inference.images import decode_image, to_bgr
from tests.api.bombs import MEMORY_BOMB_SIDE, bombs, corpus, png
from tests.api.conftest import b64, make_settings, wait_ready
from tests.conftest import SHARED_MODELS
from tests.images import encode, grace_hopper_jpeg

ALLOWED_ORIGIN = "https://app.example"
MEMORY_MB = 64
MAX_UPLOAD = 2_000_000

JSON_ROUTES: dict[str, Any] = {
    "/api/face-detection/detect": lambda img: {"image_base64": img},
    "/api/face-recognition/add-face": lambda img: {"person_name": "x", "face_image_base64": img},
    "/api/face-recognition/register-multiple": lambda img: {
        "full_name": "x",
        "employee_id": "E-bomb",
        "images": [img],
    },
    "/api/face-recognition/recognize": lambda img: {"face_image_base64": img},
    "/api/face-recognition/compare": lambda img: {
        "face1_image_base64": img,
        "face2_image_base64": img,
    },
    "/api/face-antispoofing/detect": lambda img: {"image_base64": img},
}
UPLOAD_ROUTES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "/api/face-detection/detect-upload": (("file",), {}),
    "/api/face-recognition/add-face-upload": (("file",), {"person_name": "x"}),
    "/api/face-recognition/recognize-upload": (("file",), {}),
    "/api/face-recognition/compare-upload": (("file1", "file2"), {}),
    "/api/face-antispoofing/detect-upload": (("file",), {}),
}


def envelope_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert "Traceback" not in response.text
    return body["error"]


@pytest.fixture(scope="module")
def limited(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TestClient]:
    """Small limits, one allowed origin; with the liveness pack when the reference weights are
    there (without it the anti-spoofing routes answer 503 before looking at the image)."""
    settings = make_settings(
        tmp_path_factory.mktemp("limits"),
        limits={
            "max_request_memory_mb": MEMORY_MB,
            "max_upload_bytes": MAX_UPLOAD,
            "max_pixels_per_request": 2_000_000,
        },
    )
    settings.server.cors_origins = [ALLOWED_ORIGIN]
    if SHARED_MODELS.is_dir():
        settings.models.model_dir = request.getfixturevalue("pack_model_dir")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


def _without_liveness_pack(route: str, code: str | None) -> bool:
    return not SHARED_MODELS.is_dir() and "antispoofing" in route and code == "liveness_unavailable"


def send_everywhere(client: TestClient, data: bytes) -> list[tuple[str, int, str | None]]:
    """``data`` through every image route; (route, status, error code)."""
    answers = []
    text = b64(data)
    for route, body in JSON_ROUTES.items():
        response = client.post(route, json=body(text))
        code = envelope_of(response)["code"] if response.status_code >= 400 else None
        answers.append((route, response.status_code, code))
    for route, (fields, form) in UPLOAD_ROUTES.items():
        files = {field: ("x.bin", data) for field in fields}
        response = client.post(route, files=files, data=form)
        code = envelope_of(response)["code"] if response.status_code >= 400 else None
        answers.append((route, response.status_code, code))
    return answers


# --- the malformed-image corpus through every route -------------------------------------------

BOMBS = bombs()
CORPUS = corpus()
BOMB_CODES = {"image_too_large", "too_many_pixels", "unsupported_format", "model_not_installed"}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bomb_is_refused_on_every_route(limited: TestClient, name: str) -> None:
    for route, status, code in send_everywhere(limited, BOMBS[name]):
        if _without_liveness_pack(route, code):
            continue
        assert 400 <= status < 500, (route, status, code)
        # register-multiple reports each image's reason inside no_usable_images
        assert code in BOMB_CODES | {"no_usable_images"}, (route, status, code)


@pytest.mark.parametrize("name", [n for n in CORPUS if n not in BOMBS])
def test_malformed_image_never_a_server_error(limited: TestClient, name: str) -> None:
    for route, status, code in send_everywhere(limited, CORPUS[name]):
        if _without_liveness_pack(route, code):
            continue
        assert status < 500, (route, status, code)
        if status >= 400:
            assert code, (route, status)


def test_service_keeps_answering_after_the_corpus(limited: TestClient) -> None:
    response = limited.post(
        "/api/face-detection/detect", json={"image_base64": b64(grace_hopper_jpeg())}
    )
    assert response.status_code == 200
    assert response.json()["faces_detected"] == 1


# --- decoding within the memory bound ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [n for n in BOMBS if any(s in n for s in ("20000", "65000", "16384")) and "gif" not in n],
)
def test_pixel_bombs_refused_from_the_header(name: str) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_image(BOMBS[name], LimitSettings())
    assert caught.value.code == "image_too_large"


def test_memory_bomb_details_give_the_cost_and_the_limit() -> None:
    data = png(MEMORY_BOMB_SIDE, MEMORY_BOMB_SIDE, bit_depth=16, color_type=6, rows=2)
    assert len(data) < 1000
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_image(data, LimitSettings())  # default bound: 200 MB
    details = caught.value.details
    assert caught.value.code == "image_too_large"
    assert details["decode_bytes"] > details["limit_bytes"] > 150 * 1024 * 1024
    assert (details["width"], details["height"], details["mode"]) == (6000, 6000, "RGBA")


def test_large_jpeg_decoded_at_reduced_scale_when_only_positions_are_needed() -> None:
    data = encode(np.full((3000, 4000, 3), 90, np.uint8), "JPEG")
    limits = LimitSettings(max_request_memory_mb=64)
    with pytest.raises(PayloadTooLargeError):
        decode_image(data, limits)  # full size: 12 MP x 7 bytes > 64 MB
    reduced = decode_image(data, limits, reduce_to=1024)
    assert (reduced.width, reduced.height) == (4000, 3000)
    assert reduced.pixels.shape == (1500, 2000, 3)


def test_request_memory_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from facerec.config import Settings

    monkeypatch.setenv("FACEREC_LIMITS__MAX_REQUEST_MEMORY_MB", "150")
    monkeypatch.setenv("FACEREC_SERVER__CORS_ORIGINS", '["https://a.example"]')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.limits.max_request_memory_mb == 150
    assert settings.server.cors_origins == ["https://a.example"]
    assert LimitSettings().max_request_memory_mb <= 200


@pytest.mark.parametrize("orientation", range(10))
def test_exif_orientation_matches_pillow(orientation: int) -> None:
    pixels = np.random.default_rng(orientation).integers(0, 255, (40, 60, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(pixels, "PNG", exif=exif.tobytes())
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    decoded = decode_image(data, LimitSettings())
    assert np.array_equal(decoded.pixels, np.asarray(upright)[:, :, ::-1])
    assert (decoded.width, decoded.height) == upright.size


def test_strip_conversion_keeps_16_bit_and_alpha_semantics() -> None:
    rng = np.random.default_rng(3)
    gray16 = rng.integers(0, 65535, (300, 257), np.uint16)
    expected = np.clip(gray16 / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    got = to_bgr(Image.fromarray(gray16))
    assert np.array_equal(got, np.repeat(expected[:, :, None], 3, axis=2))
    rgba = Image.fromarray(rng.integers(0, 255, (300, 257, 4), np.uint8), "RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba).convert("RGB")
    assert np.array_equal(to_bgr(rgba), np.asarray(flat)[:, :, ::-1])


MEASURE = textwrap.dedent(
    """
    import io, json, re, sys
    from PIL import Image
    from facerec.config import LimitSettings
    from facerec.inference import images

    def status(field):
        text = open("/proc/self/status").read()
        return int(re.search(field + r":\\s+(\\d+) kB", text).group(1)) * 1024

    data = open(sys.argv[1], "rb").read()
    limits = LimitSettings(max_upload_bytes=10**9, max_request_memory_mb=10**5)
    images.decode_image(open(sys.argv[2], "rb").read(), limits)  # warm the code paths
    image = Image.open(io.BytesIO(data))
    kind = images.sniff_format(data)
    rotated = images._orientation(image) in images._ORIENT
    cost = images.decode_cost(image, kind, full_size=image.size, rotated=rotated)
    image.close()
    open("/proc/self/clear_refs", "w").write("5")  # peak mark := current RSS
    before = status("VmRSS")
    images.decode_image(data, limits)
    print(json.dumps({"cost": cost, "growth": status("VmHWM") - before}))
    """
)


def _gradient(mode: str) -> Image.Image:
    y, x = np.mgrid[0:2000, 0:3000]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    if mode == "I;16":
        return Image.fromarray((x * 20).astype(np.uint16))
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, rgb[..., :1]]))
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize(
    "mode,fmt,options",
    [
        ("RGB", "JPEG", {}),
        ("RGB", "JPEG", {"progressive": True}),
        ("CMYK", "JPEG", {}),
        ("L", "PNG", {}),
        ("I;16", "PNG", {}),
        ("RGBA", "PNG", {}),
        ("RGB", "TIFF", {"compression": "tiff_deflate"}),
        ("RGB", "BMP", {}),
        ("RGBA", "WEBP", {"lossless": True}),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(v) or "plain",
)
def test_decode_cost_covers_the_real_peak(
    tmp_path: Path, mode: str, fmt: str, options: dict[str, Any]
) -> None:
    """In a fresh process, the peak RSS growth of decoding a 6 MP image never exceeds what
    ``decode_cost`` predicted from the header (which is what the bound is checked against)."""
    path, warm = tmp_path / "image.bin", tmp_path / "warm.bin"
    path.write_bytes(encode(_gradient(mode), fmt, **options))
    warm.write_bytes(encode(_gradient(mode).resize((64, 48)), fmt, **options))
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(warm)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(out.stdout)
    assert 0 < figures["growth"] <= figures["cost"], figures


# --- register-multiple's total work -----------------------------------------------------------


def test_register_multiple_total_pixels_413_before_decoding(limited: TestClient) -> None:
    photo = b64(encode(np.full((600, 800, 3), 128, np.uint8), "PNG"))  # 0.48 MP each
    response = limited.post(
        "/api/face-recognition/register-multiple",
        json={"full_name": "Many", "employee_id": "E-many", "images": [photo] * 5},
    )
    assert response.status_code == 413
    error = envelope_of(response)
    assert error["code"] == "too_many_pixels"
    assert error["details"] == {"pixels": 2_400_000, "limit_pixels": 2_000_000}


# --- request bodies ---------------------------------------------------------------------------


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"image_base64": "'
    sent = 0
    while sent < total:
        yield b"A" * size
        sent += size
    yield b'"}'


def test_chunked_body_over_the_limit_is_413(limited: TestClient) -> None:
    response = limited.post(
        "/api/face-detection/detect",
        content=_chunks(4 * MAX_UPLOAD),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert envelope_of(response)["code"] == "payload_too_large"


def test_chunked_body_under_the_limit_is_served(limited: TestClient) -> None:
    body = json.dumps({"image_base64": b64(grace_hopper_jpeg())}).encode()

    def parts() -> Iterator[bytes]:
        for at in range(0, len(body), 10_000):
            yield body[at : at + 10_000]

    response = limited.post(
        "/api/face-detection/detect", content=parts(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


def test_declared_length_over_the_limit_closes_the_connection(limited: TestClient) -> None:
    response = limited.post(
        "/api/face-detection/detect-upload",
        files={"file": ("a.png", b"\x89PNG" + b"\x00" * (4 * MAX_UPLOAD))},
    )
    assert response.status_code == 413
    assert envelope_of(response)["code"] == "payload_too_large"
    assert response.headers["connection"] == "close"


def _noise_png(side: int, seed: int) -> bytes:
    return encode(np.random.default_rng(seed).integers(0, 255, (side, side, 3), np.uint8))


def test_compare_body_limit_covers_two_images(limited: TestClient) -> None:
    first, second = _noise_png(800, 1), _noise_png(800, 2)  # 1.92 MB each: under the file limit
    body = {"face1_image_base64": b64(first), "face2_image_base64": b64(second)}
    response = limited.post("/api/face-recognition/compare", json=body)
    assert response.status_code != 413, response.text
    upload = limited.post(
        "/api/face-recognition/compare-upload",
        files={"file1": ("a.png", first), "file2": ("b.png", second)},
    )
    assert upload.status_code != 413, upload.text
    one_image_route = limited.post(
        "/api/face-detection/detect", json={"image_base64": b64(first + second)}
    )
    assert one_image_route.status_code == 413


# --- metrics labels ---------------------------------------------------------------------------


def test_metrics_label_routes_by_template(limited: TestClient) -> None:
    ids = [uuid.uuid4().hex for _ in range(5)]
    for person_id in ids:
        limited.get(f"/api/face-recognition/persons/{person_id}")
        limited.delete(f"/api/face-recognition/persons/{person_id}")
    for probe in ("/wp-admin/setup.php", f"/.env.{ids[0]}", f"/api/{ids[1]}"):
        limited.get(probe)
    limited.request("BREW", f"/api/face-recognition/persons/{ids[2]}")
    text = limited.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("facerec_http_requests_total")]
    assert lines
    for person_id in ids:
        assert person_id not in text
    assert "wp-admin" not in text and ".env" not in text and "BREW" not in text
    assert any('route="/api/face-recognition/persons/{person_id}"' in line for line in lines)
    assert any('route="unmatched"' in line and 'status="404"' in line for line in lines)
    assert any('method="other"' in line for line in lines)


# --- cross-origin -----------------------------------------------------------------------------


def test_allowed_origin_gets_cors_headers(limited: TestClient) -> None:
    response = limited.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Origin" in response.headers["vary"]
    posted = limited.post(
        "/api/face-detection/detect",
        json={"image_base64": b64(grace_hopper_jpeg())},
        headers={"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "cross-site"},
    )
    assert posted.status_code == 200
    assert posted.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/api/face-recognition/add-face"),
        ("PATCH", "/api/face-recognition/persons/p1"),
        ("DELETE", "/api/face-recognition/persons/p1"),
        ("POST", "/api/face-recognition/collections"),
    ],
)
def test_cross_site_state_change_is_403(limited: TestClient, method: str, path: str) -> None:
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = limited.request(
            method,
            path,
            content=b"person_name=x",
            headers={**headers, "content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 403, headers
        assert envelope_of(response)["code"] == "cross_origin_forbidden"
        assert "access-control-allow-origin" not in response.headers


def test_requests_without_origin_and_same_origin_are_unaffected(limited: TestClient) -> None:
    body = {"image_base64": b64(grace_hopper_jpeg())}
    assert limited.post("/api/face-detection/detect", json=body).status_code == 200
    same = limited.post(
        "/api/face-detection/detect",
        json=body,
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 200
    read = limited.get("/health", headers={"Origin": "https://evil.example"})
    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers


def test_preflight(limited: TestClient) -> None:
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    allowed = limited.options(
        "/api/face-detection/detect", headers={"Origin": ALLOWED_ORIGIN, **asked}
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-allow-headers"] == "x-api-key"
    refused = limited.options(
        "/api/face-detection/detect", headers={"Origin": "https://evil.example", **asked}
    )
    assert refused.status_code == 403
    assert envelope_of(refused)["code"] == "cross_origin_forbidden"
    assert "access-control-allow-origin" not in refused.headers


# --- 5xx -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_close_the_connection(status: int) -> None:
    assert envelope(status, "internal_error", "x").headers["connection"] == "close"
    assert "connection" not in envelope(413, "payload_too_large", "x").headers


def test_unhandled_error_closes_the_connection(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        wait_ready(client)
        response = client.get("/boom")
        assert response.status_code == 500
        assert envelope_of(response)["code"] == "internal_error"
        assert response.headers["connection"] == "close"


# --- peak memory in a real server -------------------------------------------------------------

# What one request may add to the server's peak RSS beyond ``limits.max_request_memory_mb``: the
# detector's and embedder's activations (fixed input sizes), Python objects of the response and
# allocator slack. Measured figures: BENCHMARKS.md, "Memory per request".
BASELINE_SLACK_MB = 64


def test_peak_rss_per_request_class_stays_within_the_bound(
    record_property: Any,
) -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/PID/clear_refs to reset the peak RSS mark")
    from bench.bench_limits import MIB, SERVER_ENV, measure
    from bench.server import running_server

    bound = int(SERVER_ENV["FACEREC_LIMITS__MAX_REQUEST_MEMORY_MB"]) + BASELINE_SLACK_MB
    with running_server(SERVER_ENV) as server:
        results = measure(server.client, server.rss.process.pid, runs=1)
        assert server.client.get("/health").status_code == 200
    for kind, growth in results:
        record_property(f"peak_rss_growth_mib[{kind.name}]", round(growth / MIB, 1))
        assert growth < bound * MIB, (kind.name, growth / MIB)
        if kind.expect == 413:  # refused from the header: no pixel was allocated
            assert growth < 32 * MIB, (kind.name, growth / MIB)
