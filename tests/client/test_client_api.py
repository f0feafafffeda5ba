"""FaceRecClient against the real app (real models, SQLite), through FastAPI's test client:
every endpoint group answers its typed model, errors arrive as FaceRecApiError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facerec.app import create_app
from facerec.client import FaceRecApiError, FaceRecClient
from tests.api.conftest import make_settings, wait_ready
from tests.images import astronaut_png, blank_png, composite_rgb, encode, grace_hopper_jpeg


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceRecClient]:
    app = create_app(make_settings(tmp_path_factory.mktemp("client")))
    with TestClient(app) as test_client:
        wait_ready(test_client)
        yield FaceRecClient(http=test_client)


def test_system_endpoints(client: FaceRecClient) -> None:
    assert client.health().status == "ok"
    assert client.ready().ready
    names = {m.name for m in client.models().models}
    assert {"retinaface", "dlib_resnet"} <= names


def test_images_as_bytes_paths_and_pil(client: FaceRecClient, tmp_path: Path) -> None:
    path = tmp_path / "grace.jpg"
    path.write_bytes(grace_hopper_jpeg())
    pil = Image.open(path)
    assert client.detect(grace_hopper_jpeg()).faces_detected == 1
    assert client.detect_upload(path).faces_detected == 1
    assert client.detect_upload(str(path)).faces_detected == 1
    assert client.detect(pil).faces_detected == 1


def test_enroll_recognize_compare_and_manage(client: FaceRecClient, tmp_path: Path) -> None:
    client.create_collection("team", "client test")
    assert "team" in {c.name for c in client.list_collections().collections}
    added = client.add_face_upload(grace_hopper_jpeg(), "Grace Hopper", collection="team")
    assert added.embedding_extracted and added.person.collection == "team"
    again = client.add_face(
        encode(Image.open(tmp_path_write(tmp_path, grace_hopper_jpeg())).rotate(3)),
        "Grace Hopper",
        person_id=added.person_id,
        collection="team",
    )
    assert again.person.face_count == 2
    registered = client.register_multiple(
        [astronaut_png(), blank_png()],
        "Eileen Collins",
        "E-1",
        collection="team",
        department="NASA",
    )
    assert registered.images_accepted == 1 and registered.person.employee_id == "E-1"
    assert [r.reason for r in registered.results if not r.accepted] == ["no_face"]

    found = client.recognize_upload(grace_hopper_jpeg(), gallery="team")
    assert found.best_match is not None and found.best_match.person_id == added.person_id
    assert client.recognize(astronaut_png(), gallery="team").best_match is not None
    group = client.recognize_all_upload(encode(composite_rgb()), collection="team")
    assert group.faces_identified == 2
    assert client.recognize_all(encode(composite_rgb()), collection="team").faces_detected == 2
    assert client.compare(grace_hopper_jpeg(), grace_hopper_jpeg()).is_same_person
    assert not client.compare_upload(grace_hopper_jpeg(), astronaut_png()).is_same_person

    assert {p.person_name for p in client.iter_persons(collection="team", page_size=1)} == {
        "Grace Hopper",
        "Eileen Collins",
    }
    assert client.list_persons(employee_id="E-1").persons[0].person_name == "Eileen Collins"
    detail = client.get_person(added.person_id)
    assert len(detail.faces) == 2
    patched = client.patch_person(added.person_id, person_name="Grace B. Hopper")
    assert patched.person_name == "Grace B. Hopper"
    assert client.delete_face(added.person_id, detail.faces[1].face_id).success
    assert client.get_person(added.person_id).person.face_count == 1

    with pytest.raises(FaceRecApiError) as caught:
        client.recognize(blank_png(), gallery="team")
    assert caught.value.status == 422 and caught.value.code == "no_face"
    with pytest.raises(FaceRecApiError) as caught:
        client.delete_collection("team")
    assert caught.value.status == 409
    assert client.delete_person(registered.person.person_id).deleted_persons == 1
    assert client.delete_collection("team", force=True).deleted_persons == 1
    with pytest.raises(FaceRecApiError) as caught:
        client.get_person(added.person_id)
    assert caught.value.status == 404 and caught.value.code == "person_not_found"


def tmp_path_write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    return path


def test_photos_and_suggestions(client: FaceRecClient) -> None:
    client.create_collection("pics")
    grace = client.add_face_upload(grace_hopper_jpeg(), "Grace", collection="pics")
    photo = client.add_photo_upload(encode(composite_rgb()), "group-1", collection="pics")
    assert photo.faces_detected == 2 and photo.faces_identified == 1
    tagged = next(f for f in photo.faces if f.person_id == grace.person_id)
    stranger = next(f for f in photo.faces if f.person_id is None)
    assert client.confirm_face("group-1", tagged.index).faces[tagged.index].status == "confirmed"
    rejected = client.reject_face("group-1", stranger.index, grace.person_id)
    assert grace.person_id in rejected.faces[stranger.index].rejected_person_ids
    eileen = client.add_face(astronaut_png(), "Eileen", collection="pics")
    assigned = client.assign_face("group-1", stranger.index, eileen.person_id)
    assert assigned.faces[stranger.index].person_id == eileen.person_id
    assert client.retag_photo("group-1").photo_id == "group-1"
    assert client.get_photo("group-1").faces_detected == 2
    assert [p.photo_id for p in client.person_photos(grace.person_id).photos] == ["group-1"]
    client.add_photo(astronaut_png(), "solo", collection="pics")
    assert client.list_suggestions("pics").success
    assert client.delete_photo("group-1").success
    with pytest.raises(FaceRecApiError) as caught:
        client.dismiss_suggestion("no-such-suggestion")
    assert caught.value.status == 404
    with pytest.raises(FaceRecApiError):
        client.accept_suggestion("no-such-suggestion", "Nobody")


def test_admin_keys_audit_and_migrations(client: FaceRecClient) -> None:
    created = client.create_key(["detect"], name="client-test")
    assert created.key.startswith("fk_") and created.status == "active"
    assert created.key_id in {k.key_id for k in client.list_keys().keys}
    assert client.revoke_key(created.key_id).key.status == "revoked"
    assert any(e.action.startswith("key.") for e in client.audit(limit=50).events)
    assert client.list_migrations().migrations == []
    with pytest.raises(FaceRecApiError) as caught:
        client.start_migration("default", "w600k_mbf")
    assert caught.value.status == 400 and caught.value.code == "model_not_installed"
    with pytest.raises(FaceRecApiError) as caught:
        client.get_migration("nope")
    assert caught.value.code == "migration_not_found"
    for action in (client.cut_over, client.rollback, client.finish):
        with pytest.raises(FaceRecApiError):
            action("nope")
