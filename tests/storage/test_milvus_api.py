"""The service with ``FACEREC_INDEX__BACKEND=milvus`` (milvus-lite): enroll → recognize → erase,
and a Milvus that goes away answers 503 ``milvus_unavailable`` in the error envelope."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facerec.app import create_app
from facerec.storage.milvus import MilvusSearcher
from tests.api.conftest import b64, make_settings, wait_ready
from tests.conftest import unavailable
from tests.images import astronaut_png, grace_hopper_jpeg

API = "/api/face-recognition"


@pytest.fixture(scope="module")
def milvus_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    if find_spec("milvus_lite") is None or find_spec("pymilvus") is None:
        unavailable("milvus-lite and pymilvus", "pip install -e '.[test]' (or '.[milvus]')")
    tmp = tmp_path_factory.mktemp("milvus-app")
    uri = tmp / "milvus" / "gallery.db"
    index = {"backend": "milvus", "index_dir": tmp / "index", "milvus_uri": str(uri)}
    with TestClient(create_app(make_settings(tmp, index=index))) as client:
        wait_ready(client)
        yield client, uri


def post(client: TestClient, path: str, status: int = 200, **body: Any) -> dict[str, Any]:
    response = client.post(API + path, json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def test_recognize_through_milvus_then_an_outage_is_a_503(
    milvus_app: tuple[TestClient, Path],
) -> None:
    client, uri = milvus_app
    searcher = client.app.state.facerec.services.searcher  # type: ignore[attr-defined]
    assert isinstance(searcher, MilvusSearcher)
    grace = b64(grace_hopper_jpeg())
    post(
        client, "/add-face", person_name="Grace Hopper", person_id="grace", face_image_base64=grace
    )
    found = post(client, "/recognize", face_image_base64=grace)
    assert found["unknown"] is False and found["best_match"]["person_id"] == "grace"
    stranger = post(client, "/recognize", face_image_base64=b64(astronaut_png()))
    assert stranger["unknown"] is True

    # Erased: unreachable in Milvus at once.
    state = client.app.state.facerec  # type: ignore[attr-defined]
    faces = client.portal.call(state.repository.list_faces, "grace")  # type: ignore[union-attr]
    name = searcher.gateway.name("default", faces[0].space)
    assert client.delete(f"{API}/persons/grace").status_code == 200
    present = client.portal.call(  # type: ignore[union-attr]
        searcher.gateway.present, name, [f.id for f in faces]
    )
    assert present == set()
    gone = post(client, "/recognize", face_image_base64=grace)
    assert gone["unknown"] is True

    # Milvus goes away (milvus-lite's server in this process is stopped): a typed 503.
    from milvus_lite.server_manager import (  # type: ignore[import-untyped]
        server_manager_instance,
    )

    post(client, "/add-face", person_name="Ada", person_id="ada", face_image_base64=grace)
    server_manager_instance.release_server(str(uri))
    response = client.post(API + "/recognize", json={"face_image_base64": b64(astronaut_png())})
    assert response.status_code == 503, response.text
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "milvus_unavailable"
    assert "Retry-After" in response.headers
