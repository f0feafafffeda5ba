"""The gallery flow through HTTP with real photos and real models, on the embedded SQLite default:
enroll Grace Hopper → recognise her from altered copies → the astronaut is unknown → compare →
delete → she is unknown and nothing of her remains in the database or the cache."""

from __future__ import annotations

import hashlib
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from facerec.app import create_app
from facerec.cache.base import image_result_key, person_key
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import astronaut_png, encode, grace_hopper_jpeg, grace_hopper_rgb

API = "/api/face-recognition"


def altered_copies() -> dict[str, bytes]:
    """Grace Hopper cropped, mirrored, brightened, darkened and re-encoded at low JPEG quality."""
    image = Image.fromarray(grace_hopper_rgb())
    return {
        "crop": encode(image.crop((100, 50, 450, 420)), "JPEG", quality=92),
        "flip": encode(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "PNG"),
        "bright": encode(ImageEnhance.Brightness(image).enhance(1.4), "JPEG", quality=90),
        "dark": encode(ImageEnhance.Brightness(image).enhance(0.6), "JPEG", quality=90),
        "jpeg q15": encode(image, "JPEG", quality=15),
    }


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    tmp = tmp_path_factory.mktemp("gallery")
    settings = make_settings(tmp)
    settings.cache.template_max_mb = 3
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client, tmp / "facerec.db"


def post(client: TestClient, path: str, status: int = 200, **body: Any) -> dict[str, Any]:
    response = client.post(API + path, json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def test_full_flow(gallery: tuple[TestClient, Path]) -> None:
    client, db_path = gallery
    grace = b64(grace_hopper_jpeg())
    enrolled = post(
        client,
        "/add-face",
        person_name="Grace Hopper",
        person_id="grace",
        face_image_base64=grace,
        metadata={"rank": "Rear Admiral"},
    )
    assert enrolled["person_id"] == "grace" and enrolled["embedding_extracted"] is True
    assert enrolled["model_used"] == "dlib_resnet"
    assert enrolled["face_quality"] > 60

    for name, data in altered_copies().items():
        result = post(client, "/recognize", face_image_base64=b64(data))
        assert result["unknown"] is False, (name, result["matches"])
        assert result["best_match"]["person_id"] == "grace", name
        assert result["best_match"]["person_name"] == "Grace Hopper"
        assert result["best_match"]["similarity"] > 0.5
        assert result["best_match"]["metadata"] == {"rank": "Rear Admiral"}

    stranger = post(client, "/recognize", face_image_base64=b64(astronaut_png()))
    assert stranger["unknown"] is True and stranger["best_match"] is None
    assert stranger["matches_found"] == 0
    assert all(m["similarity"] < 0.5 for m in stranger["matches"])

    same = post(
        client,
        "/compare",
        face1_image_base64=grace,
        face2_image_base64=b64(altered_copies()["crop"]),
    )
    assert same["is_same_person"] is True and same["similarity_score"] > 0.5
    assert 0.5 <= same["confidence"] <= 1.0
    different = post(
        client, "/compare", face1_image_base64=grace, face2_image_base64=b64(astronaut_png())
    )
    assert different["is_same_person"] is False and different["similarity_score"] < 0.5
    assert different["face2"]["bbox"]["width"] > 0

    state = client.app.state.facerec  # type: ignore[attr-defined]
    result_key = image_result_key(
        hashlib.sha256(grace_hopper_jpeg()).hexdigest(), "retinaface", "dlib_resnet+balanced"
    )
    # Query results live in this process's own cache, never in a shared one.
    query_cache = state.queries.cache.queries
    assert client.portal.call(query_cache.get, result_key) is not None  # recognize cached it
    text = client.get("/metrics").text
    assert 'facerec_cache_requests_total{result="hit"}' in text
    # Her template (every face's vector) is kept by this process for the next recognize...
    templates = state.queries.cache.templates.store
    assert templates.max_bytes == 3 * 1024 * 1024  # FACEREC_CACHE__TEMPLATE_MAX_MB
    assert any(key.endswith(":grace") for key in templates._entries)

    deleted = client.delete(f"{API}/persons/grace")
    assert deleted.status_code == 200 and deleted.json()["deleted_faces"] == 1
    # The cached embedding of the enrolled photo and her template go with the person.
    assert client.portal.call(query_cache.get, result_key) is None
    assert not any(key.endswith(":grace") for key in templates._entries)
    after = post(client, "/recognize", face_image_base64=grace)
    assert after["unknown"] is True
    assert all(m["person_id"] != "grace" for m in after["matches"])
    assert client.get(f"{API}/persons/grace").status_code == 404

    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        # change_log keeps ids (no images, no vectors) so other processes can drop their index
        # entries; every table holding personal data must be clean.
        for table in (t for t in tables if t != "change_log"):
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            if "person_id" in columns:
                count = conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE person_id='grace'"
                ).fetchone()
                assert count[0] == 0, f"{table} still holds rows of the erased person"
    cached = client.portal.call(state.cache.get, person_key("grace"))  # type: ignore[union-attr]
    assert cached is None


def test_register_multiple_atomic_and_duplicate(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    images = [b64(grace_hopper_jpeg()), b64(altered_copies()["crop"]), b64(astronaut_png()[:500])]
    body = post(
        client,
        "/register-multiple",
        full_name="Grace Hopper",
        employee_id="E-1906",
        department="Navy",
        position="Rear Admiral",
        images=images,
    )
    assert body["images_accepted"] == 2 and body["images_rejected"] == 1
    assert body["results"][2]["reason"] == "corrupt_image"
    assert body["person"]["employee_id"] == "E-1906" and body["person"]["face_count"] == 2
    again = client.post(
        API + "/register-multiple",
        json={"full_name": "X", "employee_id": "E-1906", "images": images},
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_employee_id"
    replaced = post(
        client,
        "/register-multiple",
        full_name="Grace B. Hopper",
        employee_id="E-1906",
        images=images[:1],
        replace=True,
    )
    assert replaced["created"] is False and replaced["person"]["face_count"] == 1
    assert replaced["person"]["person_name"] == "Grace B. Hopper"


def test_register_multiple_writes_nothing_when_no_image_is_usable(
    gallery: tuple[TestClient, Path],
) -> None:
    client, _ = gallery
    blank = b64(encode(np.full((200, 200, 3), 90, np.uint8), "PNG"))
    response = client.post(
        API + "/register-multiple",
        json={"full_name": "Nobody", "employee_id": "E-0", "images": [blank, blank]},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "no_usable_images"
    assert [r["reason"] for r in error["details"]["results"]] == ["no_face", "no_face"]
    persons = client.get(API + "/persons", params={"employee_id": "E-0"}).json()
    assert persons["persons"] == []


def test_enrollment_rejections(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    blank = b64(encode(np.full((200, 200, 3), 90, np.uint8), "PNG"))
    no_face = client.post(API + "/add-face", json={"person_name": "A", "face_image_base64": blank})
    assert no_face.status_code == 422 and no_face.json()["error"]["code"] == "no_face"
    twins = np.hstack([grace_hopper_rgb(), grace_hopper_rgb()])
    group = b64(encode(twins, "JPEG"))
    several = client.post(API + "/add-face", json={"person_name": "A", "face_image_base64": group})
    assert several.status_code == 422 and several.json()["error"]["code"] == "multiple_faces"
    tiny = Image.fromarray(grace_hopper_rgb()).resize((60, 70))
    small = client.post(
        API + "/add-face", json={"person_name": "A", "face_image_base64": b64(encode(tiny, "PNG"))}
    )
    assert small.status_code == 422
    assert small.json()["error"]["code"] in ("low_quality", "no_face")
    model = client.post(
        API + "/add-face",
        json={
            "person_name": "A",
            "face_image_base64": b64(grace_hopper_jpeg()),
            "model_name": "arcface",
        },
    )
    assert model.status_code == 400 and model.json()["error"]["code"] == "model_not_installed"


def test_recognize_bad_input(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    grace = b64(grace_hopper_jpeg())
    missing = client.post(API + "/recognize", json={"face_image_base64": grace, "gallery": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "collection_not_found"
    for top_k in (0, 101):
        bad = client.post(API + "/recognize", json={"face_image_base64": grace, "top_k": top_k})
        assert bad.status_code == 422
    wrong_dim = client.post(
        API + "/recognize", json={"face_image_base64": grace, "gallery": {"p1": [[0.1, 0.2, 0.3]]}}
    )
    assert wrong_dim.status_code == 400
    assert wrong_dim.json()["error"]["code"] == "embedding_dim_mismatch"


def test_inline_gallery(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    enrolled = post(
        client,
        "/add-face",
        person_name="Inline",
        face_image_base64=b64(grace_hopper_jpeg()),
        collection="default",
    )
    state = client.app.state.facerec  # type: ignore[attr-defined]
    faces = client.portal.call(
        lambda: state.persons.repository.list_faces(enrolled["person_id"], with_embeddings=True)
    )
    vector = faces[0].embedding.tolist()
    result = post(
        client,
        "/recognize",
        face_image_base64=b64(altered_copies()["bright"]),
        gallery={"someone": [vector], "other": [[0.0] * len(vector)]},
    )
    assert result["best_match"]["person_id"] == "someone"
    assert result["matches"][0]["margin"] > 0
    client.delete(f"{API}/persons/{enrolled['person_id']}")


def test_persons_crud_pagination_and_collections(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    created = client.post(API + "/collections", json={"name": "visitors", "description": "lobby"})
    assert created.status_code == 201
    names = [c["name"] for c in client.get(API + "/collections").json()["collections"]]
    assert {"default", "visitors"} <= set(names)
    ids = []
    for i in range(3):
        body = post(
            client,
            "/add-face",
            person_name=f"Visitor {i}",
            collection="visitors",
            face_image_base64=b64(grace_hopper_jpeg()),
        )
        ids.append(body["person_id"])
    page1 = client.get(API + "/persons", params={"collection": "visitors", "limit": 2}).json()
    assert len(page1["persons"]) == 2 and page1["next_cursor"]
    page2 = client.get(
        API + "/persons",
        params={"collection": "visitors", "limit": 2, "cursor": page1["next_cursor"]},
    ).json()
    assert len(page2["persons"]) == 1 and page2["next_cursor"] is None
    seen = {p["person_id"] for p in page1["persons"] + page2["persons"]}
    assert seen == set(ids)
    patched = client.patch(
        f"{API}/persons/{ids[0]}", json={"person_name": "Renamed", "metadata": {"a": 1}}
    )
    assert patched.status_code == 200 and patched.json()["person_name"] == "Renamed"
    found = client.get(API + "/persons", params={"name": "renam"}).json()["persons"]
    assert [p["person_id"] for p in found] == [ids[0]]
    detail = client.get(f"{API}/persons/{ids[0]}").json()
    face_id = detail["faces"][0]["face_id"]
    gone = client.delete(f"{API}/persons/{ids[0]}/faces/{face_id}")
    assert gone.status_code == 200 and gone.json()["deleted_faces"] == 1
    assert client.get(f"{API}/persons/{ids[0]}").json()["person"]["face_count"] == 0
    refuse = client.delete(API + "/collections/visitors")
    assert refuse.status_code == 409
    forced = client.delete(API + "/collections/visitors", params={"force": "true"})
    assert forced.status_code == 200 and forced.json()["deleted_persons"] == 3
    assert client.get(f"{API}/persons/{ids[1]}").status_code == 404
    assert client.get(f"{API}/persons/nobody").json()["error"]["code"] == "person_not_found"


def test_upload_variants(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    client.post(API + "/collections", json={"name": "uploads"})
    files = {"file": ("g.jpg", grace_hopper_jpeg())}
    added = client.post(
        API + "/add-face-upload",
        files=files,
        data={"person_name": "Up", "metadata": '{"k": 2}', "collection": "uploads"},
    )
    assert added.status_code == 200, added.text
    person_id = added.json()["person_id"]
    found = client.post(
        API + "/recognize-upload",
        files={"file": ("x.png", io.BytesIO(altered_copies()["flip"]))},
        data={"gallery": "uploads"},
    )
    assert found.status_code == 200 and found.json()["best_match"]["person_id"] == person_id
    compared = client.post(
        API + "/compare-upload",
        files={"file1": ("a.jpg", grace_hopper_jpeg()), "file2": ("b.png", astronaut_png())},
    )
    assert compared.status_code == 200 and compared.json()["is_same_person"] is False
    bad_meta = client.post(
        API + "/add-face-upload", files=files, data={"person_name": "Up", "metadata": "[1]"}
    )
    assert bad_meta.status_code == 400 and bad_meta.json()["error"]["code"] == "invalid_metadata"
    client.delete(f"{API}/persons/{person_id}")


def test_register_multiple_image_count_limits(gallery: tuple[TestClient, Path]) -> None:
    client, _ = gallery
    empty = client.post(
        API + "/register-multiple", json={"full_name": "A", "employee_id": "E-9", "images": []}
    )
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "no_images"
    many = client.post(
        API + "/register-multiple",
        json={"full_name": "A", "employee_id": "E-9", "images": ["x"] * 21},
    )
    assert many.status_code == 400 and many.json()["error"]["code"] == "too_many_images"


def test_concurrent_add_face_for_one_new_person(gallery: tuple[TestClient, Path]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client, _ = gallery
    grace = b64(grace_hopper_jpeg())

    def add(_: int) -> int:
        response = client.post(
            API + "/add-face",
            json={"person_name": "Racer", "person_id": "racer-1", "face_image_base64": grace},
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(add, range(4)))
    assert statuses == [200, 200, 200, 200]
    persons = client.get(API + "/persons", params={"name": "Racer"}).json()["persons"]
    assert len(persons) == 1 and persons[0]["face_count"] == 4
    client.delete(f"{API}/persons/racer-1")
