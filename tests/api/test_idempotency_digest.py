"""An Idempotency-Key's request digest is the SHA-256 of the route and the request's canonical
JSON, exactly as before long photos were hashed as they are: digests stored by an earlier
version (or by another replica during a rolling upgrade) still match their retries."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from pydantic import BaseModel

from facerec.api import idempotency
from facerec.api.idempotency import request_digest


class Enrollment(BaseModel):
    person_name: str
    face_image_base64: str = ""
    images: list[str] = []
    metadata: dict[str, Any] = {}


def stored_formula(route: str, request: BaseModel) -> str:
    """How the digests already in the idempotency table were made."""
    fields = json.dumps(
        request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(f"{route}\n{fields}\n".encode()).hexdigest()


PHOTO = base64.b64encode(bytes(range(256)) * 1200).decode()  # 400 KB of plain base64
CASES = {
    "one long photo": Enrollment(person_name="Grace", face_image_base64=PHOTO),
    "short photo": Enrollment(person_name="Grace", face_image_base64=PHOTO[:400]),
    "photos in a list and metadata": Enrollment(
        person_name='Grace "Amazing" Hopper \\ \u00e9\u4e2d',
        images=[PHOTO, PHOTO[::-1], PHOTO[4:]],
        metadata={"b": [PHOTO, {"c": PHOTO}], "a": "x\ny\u2028"},
    ),
    "wrapped base64": Enrollment(person_name="G", face_image_base64="\n".join(PHOTO)),
    "url-safe base64": Enrollment(
        person_name="G", face_image_base64=PHOTO.replace("+", "-").replace("/", "_")
    ),
    "long text that is no base64": Enrollment(person_name="G", face_image_base64="\"'\\" * 30000),
    "a photo named like a token": Enrollment(
        person_name='"facerec-0-0"', face_image_base64=PHOTO, metadata={"facerec-x-0": PHOTO}
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_digest_is_the_stored_formula(case: str) -> None:
    request = CASES[case]
    for route in ("add-face", "register-multiple"):
        assert request_digest(route, request).hexdigest() == stored_formula(route, request)


def test_long_plain_base64_is_not_escaped_character_by_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The JSON the digest encodes holds no long photo: the photo is hashed as it is."""
    encoded: list[int] = []
    real_dumps = json.dumps

    def measuring(value: Any, **kwargs: Any) -> str:
        text = real_dumps(value, **kwargs)
        encoded.append(len(text))
        return text

    monkeypatch.setattr(idempotency.json, "dumps", measuring)
    request = CASES["photos in a list and metadata"]
    assert request_digest("add-face", request).hexdigest() == stored_formula("add-face", request)
    assert encoded[0] < 2000 < len(PHOTO)
