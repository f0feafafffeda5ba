"""Stored photos through HTTP with real photos composed here: a group photo tagged with each
identity once, corrections that change what is returned next, rejections that stick, unknown
faces of two photos suggested as one new person, and erasure checked in the database rows."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image, ImageEnhance
from pydantic import SecretStr

from facerec.app import create_app
from facerec.events.bus import PHOTO_TAGGED, Event
from facerec.state import AppState
from facerec.storage.sealing import MAGIC
from tests.api.conftest import b64, make_settings, wait_ready
from tests.api.test_recognize_all import montage
from tests.images import astronaut_png, astronaut_rgb, encode, grace_hopper_jpeg, grace_hopper_rgb

API = "/api/face-recognition"
PHOTOS = "/api/photos"
SUGGESTIONS = "/api/photo-suggestions"


def darker_mirror(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(rgb[:, ::-1])).enhance(0.7))


def smaller(rgb: np.ndarray, factor: float = 0.8) -> np.ndarray:
    image = Image.fromarray(rgb)
    return np.asarray(image.resize((round(image.width * factor), round(image.height * factor))))


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("photos")


@pytest.fixture(scope="module")
def client(db_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_path))) as test_client:
        wait_ready(test_client)
        yield test_client


@pytest.fixture
def events(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    state: AppState = client.app.state.facerec  # type: ignore[attr-defined]
    seen: list[Event] = []
    monkeypatch.setattr(state.events, "publish", seen.append)
    return seen


def rows(db_path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path / "facerec.db") as conn:
        return list(conn.execute(sql, args))


def ok(response: Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def error(response: Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body


def post_photo(client: TestClient, photo_id: str, image: bytes, **options: Any) -> dict[str, Any]:
    return ok(
        client.post(PHOTOS, json={"photo_id": photo_id, "image_base64": b64(image), **options})
    )


def enroll(client: TestClient, person_id: str, name: str, image: bytes, collection: str) -> None:
    ok(
        client.post(
            API + "/add-face",
            json={
                "person_name": name,
                "person_id": person_id,
                "face_image_base64": b64(image),
                "collection": collection,
            },
        )
    )


def by_x(photo: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(photo["faces"], key=lambda f: f["bbox"]["x1"])


def test_a_group_photo_tagged_corrected_and_erased(
    client: TestClient, db_path: Path, events: list[Event]
) -> None:
    ok(client.post(API + "/collections", json={"name": "party"}), 201)
    enroll(client, "grace", "Grace", grace_hopper_jpeg(), "party")
    group = montage(grace_hopper_rgb(), astronaut_rgb(), darker_mirror(grace_hopper_rgb()))
    photo = post_photo(client, "group-1", group, collection="party")
    assert photo["photo_id"] == "group-1" and photo["collection"] == "party"
    assert photo["faces_detected"] == 3 and photo["image_stored"] is False
    grace, astronaut, copy = by_x(photo)
    tagged = [f["person_id"] for f in photo["faces"] if f["person_id"]]
    assert tagged == ["grace"]  # Grace twice in the photo, named once
    assert grace["person_id"] == "grace" and grace["status"] == "tagged"
    assert grace["similarity"] > 0.5 and grace["candidates"][0]["person_id"] == "grace"
    assert astronaut["unknown"] is True and astronaut["status"] == "unknown"
    assert copy["unknown"] is True and copy["decided_by"] == "assignment"
    assert photo["operating_point"]["decided_by"] == "per_face"
    # One photo.tagged event: ids, names and similarities, never an image or an embedding.
    (event,) = [e for e in events if e.type == PHOTO_TAGGED]
    assert event.data["photo_id"] == "group-1" and event.collection == "party"
    named = [f for f in event.data["faces"] if f["person_id"]]
    assert [(f["person_id"], f["person_name"]) for f in named] == [("grace", "Grace")]
    assert set(named[0]) == {
        "index",
        "person_id",
        "person_name",
        "similarity",
        "status",
        "decided_by",
    }
    # Stored: one row per face, embeddings of the usable ones, no image.
    assert rows(db_path, "SELECT image FROM photos WHERE id = 'group-1'") == [(None,)]
    stored = rows(db_path, "SELECT embedding FROM photo_faces WHERE photo_id = 'group-1'")
    assert len(stored) == 3 and all(len(r[0]) == 128 * 4 for r in stored)
    # The same id again: 409 unless replace.
    error(
        client.post(PHOTOS, json={"photo_id": "group-1", "image_base64": b64(group)}),
        409,
        "photo_exists",
    )
    assert ok(client.get(f"{PHOTOS}/group-1"))["faces"] == photo["faces"]

    # Reject: "face 0 is not Grace". It is never proposed again for that face, not even by a
    # re-tag; the mirrored copy may now take her.
    rejected = ok(
        client.post(f"{PHOTOS}/group-1/faces/{grace['index']}/reject", json={"person_id": "grace"})
    )
    face = next(f for f in rejected["faces"] if f["index"] == grace["index"])
    assert face["unknown"] and face["rejected_person_ids"] == ["grace"]
    assert all(c["person_id"] != "grace" for c in face["candidates"])
    retagged = ok(client.post(f"{PHOTOS}/group-1/retag"))
    face = next(f for f in retagged["faces"] if f["index"] == grace["index"])
    assert face["person_id"] is None and all(c["person_id"] != "grace" for c in face["candidates"])
    mirrored = next(f for f in retagged["faces"] if f["index"] == copy["index"])
    assert mirrored["person_id"] == "grace"  # no longer held by the rejected face
    again = post_photo(client, "group-1", group, collection="party", replace=True)
    face = next(f for f in again["faces"] if f["index"] == grace["index"])
    assert face["person_id"] != "grace" and face["rejected_person_ids"] == ["grace"]
    # Confirm the mirrored copy's tag.
    confirmed = ok(client.post(f"{PHOTOS}/group-1/faces/{copy['index']}/confirm"))
    face = next(f for f in confirmed["faces"] if f["index"] == copy["index"])
    assert face["status"] == "confirmed" and face["person_id"] == "grace"
    error(
        client.post(f"{PHOTOS}/group-1/faces/{astronaut['index']}/confirm"),
        409,
        "photo_face_not_tagged",
    )

    # Assign the unknown astronaut to a person: it becomes one of the person's enrolled faces.
    enroll(client, "other", "Other", astronaut_png(), "default")
    error(
        client.post(
            f"{PHOTOS}/group-1/faces/{astronaut['index']}/assign", json={"person_id": "other"}
        ),
        409,
        "person_in_other_collection",
    )
    error(
        client.post(
            f"{PHOTOS}/group-1/faces/{astronaut['index']}/assign", json={"person_id": "nobody"}
        ),
        404,
        "person_not_found",
    )
    enroll(client, "collins", "Collins", encode(smaller(astronaut_rgb()), "PNG"), "party")
    assigned = ok(
        client.post(
            f"{PHOTOS}/group-1/faces/{astronaut['index']}/assign", json={"person_id": "collins"}
        )
    )
    face = next(f for f in assigned["faces"] if f["index"] == astronaut["index"])
    assert face["person_id"] == "collins" and face["status"] == "confirmed"
    assert face["enrolled_face_id"] == assigned["face_id"]
    person = ok(client.get(f"{API}/persons/collins"))
    assert person["person"]["face_count"] == 2
    assert assigned["face_id"] in [f["face_id"] for f in person["faces"]]

    # Bad input: never a 500.
    error(client.get(f"{PHOTOS}/nope"), 404, "photo_not_found")
    error(client.delete(f"{PHOTOS}/nope"), 404, "photo_not_found")
    error(client.post(f"{PHOTOS}/group-1/faces/7/confirm"), 404, "photo_face_not_found")
    error(
        client.post(f"{PHOTOS}/group-1/faces/-1/reject", json={"person_id": "grace"}),
        404,
        "photo_face_not_found",
    )
    error(client.get(f"{PHOTOS}/bad~id"), 400, "invalid_photo_id")
    error(
        client.post(PHOTOS, json={"photo_id": "x", "image_base64": b64(group), "collection": "no"}),
        404,
        "collection_not_found",
    )
    assert client.post(PHOTOS, json={"photo_id": "x"}).status_code == 422

    # The photos of a person, paginated.
    post_photo(client, "grace-alone", grace_hopper_jpeg(), collection="party")
    first = ok(client.get(f"{API}/persons/grace/photos", params={"limit": 1}))
    assert len(first["photos"]) == 1 and first["next_cursor"]
    second = ok(
        client.get(
            f"{API}/persons/grace/photos", params={"limit": 1, "cursor": first["next_cursor"]}
        )
    )
    listed = {p["photo_id"] for p in first["photos"] + second["photos"]}
    assert listed == {"group-1", "grace-alone"} and second["next_cursor"] is None
    error(client.get(f"{API}/persons/nobody/photos"), 404, "person_not_found")

    # Erasing a person erases its confirmed photo faces and its tags; its enrolled faces with it.
    ok(client.delete(f"{API}/persons/collins"))
    assert rows(db_path, "SELECT id FROM photo_faces WHERE person_id = 'collins'") == []
    assert len(rows(db_path, "SELECT id FROM photo_faces WHERE photo_id = 'group-1'")) == 2
    assert rows(db_path, "SELECT * FROM photo_face_candidates WHERE person_id = 'collins'") == []
    ok(client.delete(f"{API}/persons/grace"))
    assert rows(db_path, "SELECT id FROM photo_faces WHERE person_id = 'grace'") == []
    assert rows(db_path, "SELECT * FROM photo_rejections WHERE person_id = 'grace'") == []
    alone = ok(client.get(f"{PHOTOS}/grace-alone"))["faces"][0]
    assert alone["unknown"] and alone["candidates"] == [] and alone["decided_by"] == "erased"
    # Erasing a photo erases every record of its faces.
    deleted = ok(client.delete(f"{PHOTOS}/group-1"))
    assert deleted["deleted_faces"] == 1  # the confirmed copy of Grace went with her
    for table, column in (
        ("photos", "id"),
        ("photo_faces", "photo_id"),
        ("photo_rejections", "photo_id"),
    ):
        assert rows(db_path, f"SELECT * FROM {table} WHERE {column} = 'group-1'") == []
    error(client.get(f"{PHOTOS}/group-1"), 404, "photo_not_found")
    assert rows(db_path, "SELECT count(*) FROM photo_face_candidates")[0][0] == 0


def test_two_photos_of_a_stranger_become_one_suggestion(client: TestClient) -> None:
    ok(client.post(API + "/collections", json={"name": "strangers"}), 201)
    options = {"collection": "strangers"}
    first = post_photo(client, "s1", montage(grace_hopper_rgb(), astronaut_rgb()), **options)
    assert all(f["unknown"] for f in first["faces"])
    assert ok(client.get(SUGGESTIONS, params=options))["suggestions"] == []
    upload = client.post(
        f"{PHOTOS}/upload",
        files={"file": ("a.png", encode(smaller(astronaut_rgb()), "PNG"))},
        data={"photo_id": "s2", "collection": "strangers"},
    )
    assert ok(upload)["faces"][0]["suggestion_id"]
    (suggestion,) = ok(client.get(SUGGESTIONS, params=options))["suggestions"]
    assert suggestion["size"] == 2 and suggestion["collection"] == "strangers"
    assert {f["photo_id"] for f in suggestion["faces"]} == {"s1", "s2"}
    assert 0.5 < suggestion["cohesion"] <= 1.0
    # Grace twice too: a second suggestion, dismissed; a third Grace photo does not revive it.
    post_photo(client, "g1", grace_hopper_jpeg(), **options)
    listed = ok(client.get(SUGGESTIONS, params=options))["suggestions"]
    assert len(listed) == 2
    grace = next(s for s in listed if s["suggestion_id"] != suggestion["suggestion_id"])
    dismissed = ok(client.post(f"{SUGGESTIONS}/{grace['suggestion_id']}/dismiss"))
    assert dismissed["dismissed_faces"] == 2
    post_photo(client, "g2", encode(darker_mirror(grace_hopper_rgb()), "JPEG"), **options)
    listed = ok(client.get(SUGGESTIONS, params=options))["suggestions"]
    assert [s["suggestion_id"] for s in listed] == [suggestion["suggestion_id"]]
    error(
        client.post(f"{SUGGESTIONS}/{grace['suggestion_id']}/dismiss"), 404, "suggestion_not_found"
    )
    # Accept: a new person whose faces are the suggestion's; recognize then finds her.
    error(
        client.post(f"{SUGGESTIONS}/{suggestion['suggestion_id']}/accept", json={}),
        422,
        "validation_error",
    )
    accepted = ok(
        client.post(
            f"{SUGGESTIONS}/{suggestion['suggestion_id']}/accept",
            json={"person_name": "Eileen", "person_id": "eileen"},
        ),
        201,
    )
    assert accepted["person"]["person_id"] == "eileen" and accepted["person"]["face_count"] == 2
    found = ok(
        client.post(
            API + "/recognize",
            json={"face_image_base64": b64(astronaut_png()), "gallery": "strangers"},
        )
    )
    assert found["best_match"]["person_id"] == "eileen"
    face = next(f for f in ok(client.get(f"{PHOTOS}/s1"))["faces"] if f["person_id"])
    assert face["person_name"] == "Eileen" and face["status"] == "confirmed"
    assert ok(client.get(SUGGESTIONS, params=options))["suggestions"] == []
    error(
        client.post(
            f"{SUGGESTIONS}/{suggestion['suggestion_id']}/accept", json={"person_name": "X"}
        ),
        404,
        "suggestion_not_found",
    )


def test_images_stored_when_configured_and_everything_sealed_with_a_key(tmp_path: Path) -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    settings = make_settings(tmp_path, photos={"store_images": True})
    settings.db.encryption_key = SecretStr(key)
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        photo = post_photo(client, "kept", montage(grace_hopper_rgb(), astronaut_rgb()))
        assert photo["image_stored"] is True and photo["faces_detected"] == 2
        enroll(client, "eileen", "Eileen", encode(smaller(astronaut_rgb()), "PNG"), "default")
        astronaut = by_x(photo)[1]
        assigned = ok(
            client.post(
                f"{PHOTOS}/kept/faces/{astronaut['index']}/assign", json={"person_id": "eileen"}
            )
        )
        assert ok(client.get(f"{API}/persons/eileen"))["person"]["face_count"] == 2
    ((image,),) = rows(tmp_path, "SELECT image FROM photos WHERE id = 'kept'")
    assert image.startswith(MAGIC) and grace_hopper_jpeg()[:64] not in image
    embeddings = rows(tmp_path, "SELECT embedding FROM photo_faces")
    assert len(embeddings) == 2 and all(bytes(e).startswith(MAGIC) for (e,) in embeddings)
    ((enrolled,),) = rows(tmp_path, "SELECT embedding FROM faces WHERE id = ?", assigned["face_id"])
    assert bytes(enrolled).startswith(MAGIC)


def walk_photo_routes(alice: Any, bob: Any, walk: Callable[[str, str], None], grace: str) -> None:
    """Tenant isolation of every photo route (called by tests/api/test_tenants.py): another
    tenant's key gets exactly the 404 of a thing that does not exist."""
    photo = ok(alice.post(PHOTOS, json={"photo_id": "ph1", "image_base64": grace}))
    assert photo["faces"][0]["person_id"] == "p1"
    astronaut = b64(astronaut_png())
    small = b64(encode(smaller(astronaut_rgb()), "PNG"))
    for photo_id, image in (("ph2", astronaut), ("ph3", small)):
        ok(alice.post(PHOTOS, json={"photo_id": photo_id, "image_base64": image}))
    (suggestion,) = ok(alice.get(SUGGESTIONS))["suggestions"]
    walk("GET", PHOTOS + "/{photo_id}")
    error(bob.get(f"{PHOTOS}/ph1"), 404, "photo_not_found")
    walk("POST", PHOTOS + "/{photo_id}/retag")
    error(bob.post(f"{PHOTOS}/ph1/retag"), 404, "photo_not_found")
    for action, body in (("confirm", None), ("assign", {"person_id": "p1"}), ("reject", None)):
        walk("POST", PHOTOS + "/{photo_id}/faces/{index}/" + action)
        error(
            bob.post(f"{PHOTOS}/ph1/faces/0/{action}", json=body or {"person_id": "p1"}),
            404,
            "photo_not_found",
        )
    walk("GET", API + "/persons/{person_id}/photos")
    error(bob.get(f"{API}/persons/p1/photos"), 404, "person_not_found")
    walk("GET", SUGGESTIONS)
    assert ok(bob.get(SUGGESTIONS))["suggestions"] == []
    error(bob.get(SUGGESTIONS, params={"collection": "staff"}), 404, "collection_not_found")
    walk("POST", SUGGESTIONS + "/{suggestion_id}/accept")
    error(
        bob.post(f"{SUGGESTIONS}/{suggestion['suggestion_id']}/accept", json={"person_name": "X"}),
        404,
        "suggestion_not_found",
    )
    walk("POST", SUGGESTIONS + "/{suggestion_id}/dismiss")
    error(
        bob.post(f"{SUGGESTIONS}/{suggestion['suggestion_id']}/dismiss"),
        404,
        "suggestion_not_found",
    )
    walk("DELETE", PHOTOS + "/{photo_id}")
    error(bob.delete(f"{PHOTOS}/ph1"), 404, "photo_not_found")
    # The same photo id is free in another tenant, and sees none of the first tenant's persons.
    walk("POST", PHOTOS)
    own = ok(bob.post(PHOTOS, json={"photo_id": "ph1", "image_base64": grace}))
    assert own["faces"][0]["person_id"] is None and own["faces"][0]["candidates"] == []
    walk("POST", PHOTOS + "/upload")
    ok(
        bob.post(
            f"{PHOTOS}/upload",
            files={"file": ("g.jpg", grace_hopper_jpeg())},
            data={"photo_id": "ph9"},
        )
    )
    # The first tenant's photo and suggestion are untouched.
    assert ok(alice.get(f"{PHOTOS}/ph1"))["faces"][0]["person_id"] == "p1"
    assert len(ok(alice.get(SUGGESTIONS))["suggestions"]) == 1
