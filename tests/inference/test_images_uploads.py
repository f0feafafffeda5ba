"""Large image bodies are decoded off the event loop: the JSON body by ``OffloadedJSONRoute``
(with ``json.loads`` semantics) and the base64 text by ``image_bytes``; plain base64 in one
pass with the full path's answers; uploads up to the limit read from memory."""

from __future__ import annotations

import base64
import json
import tempfile
import threading
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, UploadFile
from fastapi.testclient import TestClient
from pydantic import BaseModel

from facerec.api import uploads
from facerec.api.uploads import (
    OFFLOAD_CHARS,
    OffloadedJSONRoute,
    image_bytes,
    keep_uploads_in_memory,
    parse_json,
)
from facerec.config import LimitSettings
from facerec.errors import InvalidImageError, InvalidInputError, PayloadTooLargeError
from facerec.inference import image_formats
from facerec.inference.image_formats import decode_base64


class Body(BaseModel):
    face_image_base64: str
    top_k: int = 5
    gallery: dict[str, list[list[float]]] | None = None


def client(threads: dict[str, str]) -> TestClient:
    router = APIRouter(route_class=OffloadedJSONRoute)

    @router.post("/recognize")
    async def recognize(body: Body) -> dict[str, Any]:
        threads["route"] = threading.current_thread().name
        data = await image_bytes(body.face_image_base64, LimitSettings())
        return {"size": len(data), "top_k": body.top_k, "gallery": body.gallery}

    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


@pytest.mark.parametrize("size", [300, 3 * OFFLOAD_CHARS])
def test_json_bodies_parse_as_json_loads_and_large_ones_off_the_loop(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, str] = {}

    def spying(body: bytes) -> Any:
        threads["parse"] = threading.current_thread().name
        return parse_json(body)

    monkeypatch.setattr(uploads, "parse_json", spying)
    payload = base64.b64encode(bytes(range(256)) * (size // 256)).decode()
    gallery = {"ann": [[0.1, -2.5e-7, 1e300]]}
    body = {"face_image_base64": payload, "top_k": 3, "gallery": gallery}
    response = client(threads).post(
        "/recognize",
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"size": size // 256 * 256, "top_k": 3, "gallery": gallery}
    large = len(json.dumps(body)) > OFFLOAD_CHARS
    assert (threads["parse"] != threads["route"]) == large


def test_malformed_json_is_fastapis_422_not_a_500() -> None:
    response = client({}).post(
        "/recognize",
        content=b'{"face_image_base64": "AAAA", ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "text", ['{"a": NaN, "b": Infinity}', '{"a": 1, "a": 2}', "[12345678901234567890123, 1e-320]"]
)
def test_parse_json_agrees_with_json_loads(text: str) -> None:
    got, expected = parse_json(text.encode()), json.loads(text)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda text: text,
        lambda text: " \t" + text + "\r\n",
        lambda text: "\n".join(text[i : i + 76] for i in range(0, len(text), 76)),
        lambda text: "data:image/jpeg;base64," + text.replace("+", "-").replace("/", "_"),
        lambda text: text.rstrip("=") + "\x0b\x0c",
    ],
)
def test_base64_in_every_accepted_shape(wrap: Any) -> None:
    data = bytes(range(256)) * 40 + b"\xfb\xff"
    text = base64.b64encode(data).decode()
    assert decode_base64(wrap(text), LimitSettings()) == data


@pytest.mark.parametrize(
    "text",
    ["abc=", "ab==", "abcd=", "abcd==", "a===", "ab=d", "=abc", "abc*", "ab\x80d", "abcde", "YQ"],
)
def test_base64_accepts_and_refuses_what_the_standard_library_does(text: str) -> None:
    """The SIMD decoder is only a fast path: every answer and every refusal is the standard
    library's (base64.b64decode, validate=True, after the padding the API adds)."""
    raw = text.encode("ascii", errors="replace")
    raw += b"=" * (-len(raw) % 4)
    try:
        expected: bytes | str = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        expected = str(exc)
    try:
        got: bytes | str = decode_base64(text, LimitSettings())
    except InvalidInputError as exc:
        got = b"" if exc.code == "empty_image" else str(exc.details["reason"])
    assert got == expected


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 1000, 3 * OFFLOAD_CHARS])
def test_plain_base64_is_decoded_in_one_pass_as_the_full_path_decodes_it(
    length: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (bytes(range(256)) * (length // 256 + 1))[:length]
    text = base64.b64encode(data).decode()
    for wrapped in (text, "data:image/jpeg;base64," + text):
        assert decode_base64(wrapped, LimitSettings()) == data
    # Answered by the fast path alone: the full path's decoder is not needed...
    with monkeypatch.context() as patched:
        patched.setattr(image_formats, "_b64decode", lambda raw: b"the full path")
        assert decode_base64(text, LimitSettings()) == data
        # ...while whatever is not plain, padded base64 still goes the full path.
        for other in (text + "\n", text.replace("+", "-").replace("/", "_"), text.rstrip("=")):
            if other != text:
                assert decode_base64(other, LimitSettings()) == b"the full path"


def test_plain_base64_over_the_limit_is_refused_as_too_large() -> None:
    limits = LimitSettings(max_upload_bytes=1024)
    assert len(decode_base64(base64.b64encode(bytes(1023)).decode(), limits)) == 1023
    with pytest.raises(PayloadTooLargeError) as refused:
        decode_base64(base64.b64encode(bytes(1026)).decode(), limits)
    assert refused.value.code == "file_too_large"
    # Whitespace does not count against the limit.
    wrapped = "\n".join(base64.b64encode(bytes(1023)).decode())
    assert len(decode_base64(wrapped, limits)) == 1023


def test_uploads_up_to_the_limit_are_read_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starlette would spool a part over 1 MiB to disk (a worker thread hop per 64 KiB)."""
    limits = LimitSettings(max_upload_bytes=3 * 1024 * 1024)
    keep_uploads_in_memory(limits.max_upload_bytes)

    def no_disk(self: tempfile.SpooledTemporaryFile[bytes]) -> None:
        raise AssertionError("the upload was spooled to disk")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", no_disk)
    app = FastAPI()

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, int]:
        return {"size": len(await image_bytes(file, limits))}

    client = TestClient(app)
    big = bytes(range(256)) * (limits.max_upload_bytes // 256)
    response = client.post("/upload", files={"file": ("a.jpg", big, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json() == {"size": len(big)}
    with pytest.raises(PayloadTooLargeError) as refused:
        client.post("/upload", files={"file": ("a.jpg", big + b"x", "image/jpeg")})
    assert refused.value.code == "file_too_large"
    with pytest.raises(InvalidImageError) as empty:
        client.post("/upload", files={"file": ("a.jpg", b"", "image/jpeg")})
    assert empty.value.code == "empty_image"
