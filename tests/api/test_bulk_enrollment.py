"""``enroll-batch`` / ``enroll-batch-upload``: many persons with several photos each, against the
real models (RetinaFace, dlib ResNet, MobileFaceNet from ../shared/models), on photos that ship in
PyPI packages (matplotlib's Grace Hopper, scikit-image's astronaut) and variants made here."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facerec.app import create_app
from facerec.config import Settings
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import astronaut_png, encode, grace_hopper_jpeg, grace_hopper_rgb

API = "/api/face-recognition"
MODELS = ("mobilefacenet", "dlib_resnet")


def serving_with_mobilefacenet(settings: Settings, shared_models: Path) -> Iterator[TestClient]:
    """A ready client of an app on ``settings`` with the MobileFaceNet pack installed."""
    from facerec.inference.catalogue import MOBILEFACENET
    from facerec.inference.pack_install import install_pack_file

    install_pack_file(
        MOBILEFACENET,
        shared_models / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx",
        settings.models.model_dir,
        verify=True,
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def bulk_client(
    tmp_path_factory: pytest.TempPathFactory, shared_models: Path
) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("bulk")
    # Detection at the service's own side: bulk's vectors are then single enrollment's, compared
    # exactly here (the default, smaller bulk side: tests/api/test_bulk_side.py).
    settings = make_settings(tmp, limits={"bulk_detect_max_side": None})
    yield from serving_with_mobilefacenet(settings, shared_models)


def rotated_grace() -> bytes:
    return encode(Image.fromarray(grace_hopper_rgb()).rotate(5, fillcolor=(128, 128, 128)), "JPEG")


def blank() -> bytes:
    return encode(np.full((200, 200, 3), 90, np.uint8), "PNG")


def twins() -> bytes:
    return encode(np.hstack([grace_hopper_rgb(), grace_hopper_rgb()]), "JPEG")


def batch(client: TestClient, status: int = 200, **body: Any) -> dict[str, Any]:
    response = client.post(API + "/enroll-batch", json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def reasons(person: dict[str, Any]) -> list[str | None]:
    return [r["reason"] for r in person["results"]]


def stored_vectors(client: TestClient, person_id: str) -> list[np.ndarray]:
    state = client.app.state.facerec  # type: ignore[attr-defined]
    faces = client.portal.call(  # type: ignore[union-attr]
        lambda: state.repository.list_faces(person_id, with_embeddings=True)
    )
    return [np.asarray(f.embedding, dtype=np.float32) for f in faces]


def test_mixed_batch_every_item_its_own_result(bulk_client: TestClient) -> None:
    body = batch(
        bulk_client,
        collection="default",
        model_name="mobilefacenet",
        persons=[
            {
                "person_name": "Grace Hopper",
                "employee_id": "B-1906",
                "images": [b64(grace_hopper_jpeg()), b64(rotated_grace())],
            },
            {
                "person_name": "Eileen Collins",
                "images": [b64(astronaut_png()), b64(blank()), b64(twins()), "not base64!"],
            },
            {"person_name": "Nobody", "images": [b64(blank())]},
        ],
    )
    grace, eileen, nobody = body["results"]
    assert (grace["status"], eileen["status"], nobody["status"]) == (
        "created",
        "created",
        "rejected",
    )
    assert grace["images_accepted"] == 2 and grace["person"]["employee_id"] == "B-1906"
    assert grace["person"]["face_count"] == 2
    assert reasons(eileen)[0] is None and eileen["results"][0]["face_id"]
    assert reasons(eileen)[1:3] == ["no_face", "multiple_faces"]
    assert reasons(eileen)[3] in ("invalid_base64", "invalid_image")
    assert nobody["reason"] == "no_usable_images" and nobody["person"] is None
    assert (body["persons_created"], body["persons_rejected"]) == (2, 1)
    assert (body["images_total"], body["images_accepted"]) == (7, 3)
    assert body["model_used"] == "mobilefacenet"
    listed = bulk_client.get(API + "/persons", params={"name": "Nobody"}).json()
    assert listed["persons"] == []  # a rejected person has nothing written


@pytest.mark.parametrize("model", MODELS)
def test_same_embeddings_as_single_enrollment(bulk_client: TestClient, model: str) -> None:
    collection = f"same-{model.replace('_', '-')}"
    bulk_client.post(API + "/collections", json={"name": collection})
    photos = [grace_hopper_jpeg(), rotated_grace()]
    singles = []
    for i, photo in enumerate(photos):
        answer = bulk_client.post(
            API + "/add-face",
            json={
                "person_name": f"single {i}",
                "face_image_base64": b64(photo),
                "model_name": model,
                "collection": collection,
            },
        )
        assert answer.status_code == 200, answer.text
        singles.append(stored_vectors(bulk_client, answer.json()["person_id"])[0])
    body = batch(
        bulk_client,
        collection=collection,
        model_name=model,
        persons=[{"person_name": "bulk", "images": [b64(p) for p in photos]}],
    )
    person = body["results"][0]
    assert person["status"] == "created"
    assert person["warnings"] and person["warnings"][0]["code"] == "possible_duplicate"
    got = stored_vectors(bulk_client, person["person"]["person_id"])
    assert len(got) == 2
    for single in singles:  # same vectors up to resampling noise (the chip is re-aligned)
        assert min(float(np.abs(single - v).max()) for v in got) < 1e-4


def test_existing_person_guards_and_conflicts(bulk_client: TestClient) -> None:
    collection = "guards"
    bulk_client.post(API + "/collections", json={"name": collection})
    first = batch(
        bulk_client,
        collection=collection,
        persons=[
            {"person_name": "Grace", "employee_id": "G-1", "images": [b64(grace_hopper_jpeg())]}
        ],
    )
    grace_id = first["results"][0]["person"]["person_id"]
    body = batch(
        bulk_client,
        collection=collection,
        on_duplicate="reject",
        on_inconsistent="reject",
        persons=[
            {
                "person_name": "Grace",
                "person_id": grace_id,
                "images": [b64(rotated_grace()), b64(astronaut_png())],
            },
            {"person_name": "Grace again", "images": [b64(rotated_grace())]},
            {"person_name": "Grace twice", "employee_id": "G-1", "images": [b64(rotated_grace())]},
            {"person_name": "Eileen", "person_id": "eileen-1", "images": [b64(astronaut_png())]},
            {"person_name": "Bad id", "person_id": "no spaces/here", "images": [b64(blank())]},
            {"person_name": "Bad name " * 30, "images": [b64(astronaut_png())]},
        ],
    )
    added, duplicate, employee, eileen, bad_id, bad_name = body["results"]
    assert bad_id["status"] == "rejected" and bad_id["reason"] == "invalid_person_id"
    assert bad_name["status"] == "rejected" and bad_name["reason"] == "invalid_name"
    assert added["status"] == "added" and added["person"]["face_count"] == 2
    assert reasons(added) == [None, "inconsistent_with_person"]
    assert duplicate["status"] == "rejected" and duplicate["reason"] == "possible_duplicate"
    assert reasons(duplicate) == ["possible_duplicate"]
    assert employee["status"] == "rejected" and employee["reason"] == "duplicate_employee_id"
    assert eileen["status"] == "created" and eileen["person"]["person_id"] == "eileen-1"
    elsewhere = batch(
        bulk_client,
        collection="default",
        persons=[{"person_name": "E", "person_id": "eileen-1", "images": [b64(astronaut_png())]}],
    )
    assert elsewhere["results"][0]["reason"] == "person_in_other_collection"


def test_upload_variant(bulk_client: TestClient) -> None:
    persons = [
        {"person_name": "Up Grace", "files": [0, 2]},
        {"person_name": "Up Eileen", "files": [1]},
    ]
    files = [
        ("files", ("a.jpg", grace_hopper_jpeg())),
        ("files", ("b.png", astronaut_png())),
        ("files", ("c.jpg", rotated_grace())),
    ]
    response = bulk_client.post(
        API + "/enroll-batch-upload",
        data={"persons": json.dumps(persons), "collection": "default"},
        files=files,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    assert body["results"][0]["images_accepted"] == 2
    bad = bulk_client.post(
        API + "/enroll-batch-upload",
        data={"persons": json.dumps([{"person_name": "X", "files": [5]}])},
        files=files[:1],
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_batch"


def test_limits_answer_the_error_envelope(bulk_client: TestClient) -> None:
    limits = bulk_client.app.state.facerec.settings.limits  # type: ignore[attr-defined]
    saved = limits.model_copy()
    person = {"person_name": "L", "images": [b64(grace_hopper_jpeg())] * 3}
    try:
        limits.max_bulk_images = 2
        body = batch(bulk_client, 400, persons=[person])
        assert body["success"] is False and body["error"]["code"] == "too_many_images"
        limits.max_bulk_images = saved.max_bulk_images
        limits.max_images_per_request = 2
        assert batch(bulk_client, 400, persons=[person])["error"]["code"] == "too_many_images"
        limits.max_images_per_request = saved.max_images_per_request
        limits.max_bulk_bytes = len(grace_hopper_jpeg()) * 2
        body = batch(bulk_client, 413, persons=[person])
        assert body["error"]["code"] == "batch_too_large"
        assert body["error"]["details"]["limit_bytes"] == limits.max_bulk_bytes
        limits.max_bulk_bytes = saved.max_bulk_bytes
        limits.max_bulk_pixels = 600 * 512 * 2
        assert batch(bulk_client, 413, persons=[person])["error"]["code"] == "too_many_pixels"
    finally:
        for name in (
            "max_bulk_images",
            "max_images_per_request",
            "max_bulk_bytes",
            "max_bulk_pixels",
        ):
            setattr(limits, name, getattr(saved, name))
    assert batch(bulk_client, 422, persons=[])["success"] is False
    assert batch(bulk_client, 422, persons=[{"person_name": "N", "images": []}])["success"] is False


def test_sync_client_enroll_batch(bulk_client: TestClient) -> None:
    from facerec.client import BatchPerson, FaceRecClient

    client = FaceRecClient(http=bulk_client)
    done = client.enroll_batch(
        [
            BatchPerson("Client Grace", [grace_hopper_jpeg(), rotated_grace()], department="Navy"),
            BatchPerson("Client Nobody", [blank()]),
        ],
        collection="default",
        on_duplicate="warn",
    )
    grace, nobody = done.results
    assert grace.status == "created" and grace.person is not None
    assert grace.person.department == "Navy" and grace.images_accepted == 2
    assert nobody.status == "rejected" and nobody.results[0].reason == "no_face"


def test_cli_enroll_goes_through_the_batch_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from facerec.bulk.local import LocalBackend
    from facerec.cli import main

    for name, value in {
        "FACEREC_MODELS__MODEL_DIR": tmp_path / "models",
        "FACEREC_SERVER__LOG_DIR": tmp_path / "logs",
        "FACEREC_DB__URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "FACEREC_INDEX__INDEX_DIR": tmp_path / "index",
    }.items():
        monkeypatch.setenv(name, str(value))
    people = tmp_path / "people"
    for folder, photos in {
        "Grace": {"a.jpg": grace_hopper_jpeg(), "b.jpg": rotated_grace(), "c.png": blank()},
        "Eileen": {"e.png": astronaut_png()},
    }.items():
        (people / folder).mkdir(parents=True)
        for name, data in photos.items():
            (people / folder / name).write_bytes(data)
    batches: list[int] = []
    real = LocalBackend.enroll_batch

    async def spy(self: LocalBackend, items: list[Any], collection: str) -> Any:
        batches.append(sum(len(i.images) for i in items))
        return await real(self, items, collection)

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the batch path sends no single-photo request")

    monkeypatch.setattr(LocalBackend, "enroll_batch", spy)
    monkeypatch.setattr(LocalBackend, "add_face", refuse)
    monkeypatch.setattr(LocalBackend, "register_multiple", refuse)
    argv = ["enroll", str(people), "--json", "--batch-size", "3"]
    capsys.readouterr()
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["enrolled"], summary["rejected"]) == (3, 1)
    assert sorted(batches) == [1, 3]  # Eileen's photo, then Grace's three (3 per batch)
    results = {r["file"]: r for r in summary["results"]}
    assert results["c.png"]["reason"] == "no_face"
    assert results["a.jpg"]["person_id"] == results["b.jpg"]["person_id"]
    assert main(argv) == 0  # resumed: nothing sent again
    again = json.loads(capsys.readouterr().out)
    assert again["skipped"] == 3 and again["enrolled"] == 0


def test_tenants_and_collection_keys(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.api.test_tenants import As, key_for, ok

    settings = make_settings(tmp_path_factory.mktemp("bulk-tenants"), auth={"required": True})
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        alice = As(client, key_for(client, "acme"))
        bob = As(client, key_for(client, "globex"))
        grace = b64(grace_hopper_jpeg())
        ok(alice.post(API + "/collections", json={"name": "staff"}))
        ok(
            alice.post(
                API + "/add-face",
                json={"person_name": "G", "person_id": "p1", "face_image_base64": grace},
            )
        )
        mine = ok(
            bob.post(
                API + "/enroll-batch",
                json={"persons": [{"person_name": "Other", "person_id": "p1", "images": [grace]}]},
            )
        )
        result = mine["results"][0]
        assert result["status"] == "created" and result["person"]["person_id"] == "p1"
        assert result["warnings"] == []  # nothing of acme's is named, or even matched
        theirs = ok(alice.get(API + "/persons/p1"))["person"]
        assert theirs["person_name"] == "G" and theirs["face_count"] == 1
        refused = bob.post(
            API + "/enroll-batch",
            json={"collection": "staff", "persons": [{"person_name": "X", "images": [grace]}]},
        )
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "collection_not_found"
        door = As(client, key_for(client, "acme", frozenset({"staff"})))
        forbidden = door.post(
            API + "/enroll-batch-upload",
            data={"persons": json.dumps([{"person_name": "X", "files": [0]}])},
            files=[("files", ("g.jpg", grace_hopper_jpeg()))],
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "collection_forbidden"
        anonymous = client.post(API + "/enroll-batch", json={"persons": []})
        assert anonymous.status_code == 401


def test_idempotency_key_replays_the_batch(bulk_client: TestClient) -> None:
    bulk_client.post(API + "/collections", json={"name": "replay"})
    body = {
        "collection": "replay",
        "persons": [{"person_name": "R", "images": [b64(grace_hopper_jpeg())]}],
    }
    headers = {"Idempotency-Key": "bulk-replay-1"}
    first = bulk_client.post(API + "/enroll-batch", json=body, headers=headers)
    again = bulk_client.post(API + "/enroll-batch", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    listed = bulk_client.get(API + "/persons", params={"collection": "replay"}).json()
    assert len(listed["persons"]) == 1
    other = bulk_client.post(
        API + "/enroll-batch", json={**body, "collection": "default"}, headers=headers
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_embeddings_split_over_threads_match_single(bulk_client: TestClient) -> None:
    """16 faces: the chips are embedded in one call per inference thread, in order."""
    collection = "split"
    bulk_client.post(API + "/collections", json={"name": collection})

    def turned(rgb: np.ndarray, angle: float) -> bytes:
        return encode(Image.fromarray(rgb).rotate(angle, fillcolor=(128, 128, 128)), "JPEG")

    angles = [-7.0, -5.0, -3.0, -1.0, 1.0, 3.0, 5.0, 7.0]
    grace = [turned(grace_hopper_rgb(), a) for a in angles]
    eileen = [turned(np.asarray(Image.open(io.BytesIO(astronaut_png()))), a) for a in angles]
    body = batch(
        bulk_client,
        collection=collection,
        model_name="mobilefacenet",
        persons=[
            {"person_name": "G", "images": [b64(p) for p in grace]},
            {"person_name": "E", "images": [b64(p) for p in eileen]},
        ],
    )
    assert [r["images_accepted"] for r in body["results"]] == [8, 8]
    for result, photo in ((body["results"][0], grace[0]), (body["results"][1], eileen[-1])):
        single = bulk_client.post(
            API + "/add-face",
            json={
                "person_name": "single",
                "face_image_base64": b64(photo),
                "model_name": "mobilefacenet",
                "collection": collection,
            },
        ).json()
        expected = stored_vectors(bulk_client, single["person_id"])[0]
        got = stored_vectors(bulk_client, result["person"]["person_id"])
        assert min(float(np.abs(expected - v).max()) for v in got) < 1e-4


def test_only_gil_free_embedders_are_batched(bulk_client: TestClient) -> None:
    from facerec.domain.bulk_enrollment_analysis import releases_gil
    from facerec.inference.base import FaceEmbedder

    models = bulk_client.app.state.facerec.models  # type: ignore[attr-defined]
    for name, batched in (("mobilefacenet", True), ("dlib_resnet", False)):
        with models.use(name, FaceEmbedder) as model:
            assert releases_gil(model) is batched
