"""Migrating a collection from dlib to MobileFaceNet on real photos, end to end.

Enroll with dlib (chips kept), start a migration from a "CLI" that crashes after one batch, start
a new service on the same database: it resumes from the persisted progress while recognize keeps
answering from dlib (no failed request); then cut over, roll back, cut over again and finish.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance

from facerec.app import create_app
from facerec.config import Settings
from facerec.domain.migration import GalleryMigrations
from facerec.errors import ConflictError
from facerec.inference.manager import ModelManager
from facerec.inference.registry import build_models
from facerec.storage.engine import create_engine
from facerec.storage.gallery_migration import SqlMigrationStore
from facerec.storage.sql_repository import SqlGalleryRepository
from tests.api.conftest import b64, make_settings, wait_ready
from tests.images import astronaut_rgb, encode, grace_hopper_rgb

FACES = "/api/face-recognition"
MIGRATIONS = "/api/admin/migrations"
COLLECTION = "migr"


def _variants(rgb: np.ndarray) -> list[bytes]:
    image = Image.fromarray(rgb)
    width, height = image.size
    return [
        encode(image, "PNG"),
        encode(ImageEnhance.Brightness(image).enhance(1.25), "JPEG", quality=90),
        encode(image.resize((width * 3 // 4, height * 3 // 4)), "PNG"),
    ]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, shared_models: Path) -> Path:
    from facerec.inference.catalogue import MOBILEFACENET
    from facerec.inference.pack_install import install_pack_file

    target = tmp_path_factory.mktemp("mig-models")
    install_pack_file(
        MOBILEFACENET,
        shared_models / "mobilefacenet" / "mobilefacenet_foamliu_opset18.onnx",
        target,
        verify=True,
    )
    return target


def _settings(tmp: Path, model_dir: Path, lease: float) -> Settings:
    settings = make_settings(
        tmp, gallery={"migration_batch_size": 2, "migration_lease_seconds": lease}
    )
    settings.models.model_dir = model_dir
    return settings


def _crashing_cli(settings: Settings) -> str:
    """What ``facerec gallery migrate`` does, killed after its first batch (lease not released)."""

    async def main() -> str:
        engine = create_engine(settings.db)
        repository = SqlGalleryRepository(engine)
        service = GalleryMigrations(
            store=SqlMigrationStore(engine),
            repository=repository,
            models=ModelManager(build_models(settings), settings.models),
            batch_size=2,
            lease_seconds=6.0,
        )
        try:
            record = await service.start(COLLECTION, "mobilefacenet")
            assert record.total == 6 and record.without_chip == 0
            record = await service.run(record.id, max_batches=1, release=False)
            assert record.status == "running" and record.done == 2
            with pytest.raises(ConflictError) as early:
                await service.cut_over(record.id)
            assert early.value.code == "migration_not_complete"
            return record.id
        finally:
            service._pool.shutdown(wait=True)
            await repository.close()
            await engine.dispose()

    return asyncio.run(main())


def _recognize(client: TestClient, image: bytes) -> dict[str, object]:
    response = client.post(
        f"{FACES}/recognize", json={"face_image_base64": b64(image), "gallery": COLLECTION}
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _spaces(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT space, COUNT(*) FROM faces WHERE collection = ? GROUP BY space", (COLLECTION,)
        ).fetchall()
    return {space: count for space, count in rows}


def test_migration_end_to_end(tmp_path: Path, model_dir: Path) -> None:
    grace, astronaut = _variants(grace_hopper_rgb()), _variants(astronaut_rgb())
    db = tmp_path / "facerec.db"
    # 1. Enroll with dlib: the collection's active space is dlib's, chips are kept.
    with TestClient(create_app(_settings(tmp_path, model_dir, 6.0))) as client:
        wait_ready(client)
        assert client.post(f"{FACES}/collections", json={"name": COLLECTION}).status_code == 201
        for person, photos in (("grace", grace), ("eileen", astronaut)):
            for photo in photos:
                response = client.post(
                    f"{FACES}/add-face",
                    json={
                        "person_name": person,
                        "person_id": person,
                        "face_image_base64": b64(photo),
                        "model_name": "dlib_resnet",
                        "collection": COLLECTION,
                    },
                )
                assert response.status_code == 200, response.text
        # auto answers from the active space although a "better" model is installed now.
        assert _recognize(client, grace[0])["model_used"] == "dlib_resnet"
        bad = client.post(MIGRATIONS, json={"collection": COLLECTION, "to_model": "w600k_mbf"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "model_not_installed"
        assert client.get(f"{MIGRATIONS}/nope").status_code == 404
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM face_chips").fetchone()[0] == 6
    # 2. A CLI run crashes after one batch; its progress (2 of 6) is in the database.
    migration_id = _crashing_cli(_settings(tmp_path, model_dir, 6.0))
    assert _spaces(db) == {"dlib_resnet@1": 6, "mobilefacenet@foamliu-1": 2}

    # 3. A new service resumes it once the dead lease expires, while recognize keeps answering.
    with TestClient(create_app(_settings(tmp_path, model_dir, 1.0))) as client:
        wait_ready(client)
        url = f"{MIGRATIONS}/{migration_id}"
        second = client.post(
            MIGRATIONS, json={"collection": COLLECTION, "to_model": "mobilefacenet"}
        )
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "migration_running"
        failures: list[str] = []
        answers: list[str] = []
        stop = threading.Event()

        def recognise_meanwhile() -> None:
            while not stop.is_set():
                response = client.post(
                    f"{FACES}/recognize",
                    json={"face_image_base64": b64(astronaut[1]), "gallery": COLLECTION},
                )
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    body = response.json()
                    answers.append(
                        f"{body['model_used']}:{(body['best_match'] or {}).get('person_id')}"
                    )

        worker = threading.Thread(target=recognise_meanwhile)
        worker.start()
        try:
            state = client.get(url).json()["migration"]
            if state["status"] == "running":
                early = client.post(f"{url}/cut-over")
                assert early.status_code == 409
                assert early.json()["error"]["code"] == "migration_not_complete"
            deadline = time.monotonic() + 90
            while state["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
                state = client.get(url).json()["migration"]
        finally:
            stop.set()
            worker.join()
        assert state["status"] == "complete", state
        assert state["faces_done"] == 6 and state["progress"] == 1.0
        assert not failures, failures[:3]
        assert answers and set(answers) == {"dlib_resnet:eileen"}
        report = state["report"]
        assert report["faces_compared"] == 6 and report["persons"] == 2
        for space in ("old", "new"):
            assert report[space]["same_person"]["pairs"] == 6
            assert report[space]["different_person"]["pairs"] == 9
        assert report["top1"]["evaluated"] == 6
        assert report["needs_new_photo"]["count"] == 0

        # 4. Cut over: recognize answers from MobileFaceNet's space; roll back; cut over again.
        assert client.post(f"{url}/cut-over").json()["migration"]["status"] == "cut_over"
        body = _recognize(client, grace[1])
        assert body["model_used"] == "mobilefacenet"
        assert body["embedding_space"] == "mobilefacenet@foamliu-1"
        assert body["best_match"]["person_id"] == "grace"  # type: ignore[index]
        rolled = client.post(f"{url}/rollback").json()["migration"]
        assert rolled["status"] == "rolled_back" and rolled["active_space"] == "dlib_resnet@1"
        assert _recognize(client, grace[1])["model_used"] == "dlib_resnet"
        assert client.post(f"{url}/cut-over").json()["migration"]["status"] == "cut_over"
        assert _recognize(client, astronaut[2])["model_used"] == "mobilefacenet"
        # A face enrolled now (auto) goes to the active space.
        added = client.post(
            f"{FACES}/add-face",
            json={
                "person_name": "grace",
                "person_id": "grace",
                "face_image_base64": b64(encode(Image.fromarray(grace_hopper_rgb()), "JPEG")),
                "collection": COLLECTION,
            },
        )
        assert added.json()["model_used"] == "mobilefacenet"
        # 5. Finish: the old vectors are gone from the database; answers unchanged.
        done = client.post(f"{url}/finish")
        assert done.status_code == 200 and done.json()["migration"]["status"] == "finished"
        assert _spaces(db) == {"mobilefacenet@foamliu-1": 7}
        assert _recognize(client, grace[2])["best_match"]["person_id"] == "grace"  # type: ignore[index]
        again = client.post(f"{url}/finish")
        assert again.status_code == 409
        # Erasure takes the kept chips with the faces.
        assert client.delete(f"{FACES}/persons/grace").status_code == 200
    with sqlite3.connect(db) as conn:
        chips = conn.execute("SELECT COUNT(*) FROM face_chips").fetchone()[0]
        faces = conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    assert chips == faces == 3
