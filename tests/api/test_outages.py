"""Outages answered honestly, retries made safe, every stored value returned (through HTTP).

- ``Idempotency-Key``: a retry replays the first response, a different request with the key is
  409, concurrent duplicates enroll once (SQLite, the session's app);
- names and metadata that could not be stored and returned are 422 before anything is written;
- PostgreSQL behind a TCP proxy that the test cuts and restores: a service started while the
  database is down becomes ready by itself; during an outage writes are 503
  ``storage_unavailable`` with Retry-After (never 500) and ``/ready`` is 503; afterwards both come
  back without a restart.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from bench.server import free_port
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from facerec.app import create_app
from facerec.config import Settings
from tests.api.conftest import b64, wait_ready
from tests.conftest import POSTGRES_URL, unavailable
from tests.images import astronaut_png, grace_hopper_jpeg

API = "/api/face-recognition"
# The session's app is shared with other test modules: everything here goes into its own
# collection, erased at the end.
COLLECTION = "outage-tests"


@pytest.fixture(scope="module", autouse=True)
def own_collection(client: TestClient) -> Iterator[None]:
    created = client.post(API + "/collections", json={"name": COLLECTION})
    assert created.status_code == 201, created.text
    yield
    client.delete(f"{API}/collections/{COLLECTION}", params={"force": "true"})


def persons_named(client: TestClient, name: str) -> list[dict[str, Any]]:
    params = {"name": name, "collection": COLLECTION}
    found: list[dict[str, Any]] = client.get(API + "/persons", params=params).json()["persons"]
    return found


# --- Idempotency-Key -------------------------------------------------------------------------


def test_retry_with_the_same_key_replays_the_first_response(client: TestClient) -> None:
    name = f"Idem {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    body = {
        "person_name": name,
        "face_image_base64": b64(grace_hopper_jpeg()),
        "collection": COLLECTION,
    }
    first = client.post(API + "/add-face", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = client.post(API + "/add-face", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    other = client.post(
        API + "/add-face",
        json={**body, "person_name": name + " B"},
        headers={"Idempotency-Key": key},
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    persons = persons_named(client, name)
    assert len(persons) == 1 and persons[0]["face_count"] == 1
    bad = client.post(API + "/add-face", json=body, headers={"Idempotency-Key": "x\ty"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_idempotency_key"


def test_erasing_the_person_deletes_its_stored_response(client: TestClient) -> None:
    """The stored response names the person (and its metadata): it goes with the person."""
    marker = f"erase-me-{uuid.uuid4().hex}"
    key = str(uuid.uuid4())
    body = {
        "person_name": marker,
        "face_image_base64": b64(grace_hopper_jpeg()),
        "collection": COLLECTION,
        "metadata": {"note": marker},
    }
    first = client.post(API + "/add-face", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    state = client.app.state.facerec  # type: ignore[attr-defined]

    async def stored_bodies() -> list[bytes]:
        from sqlalchemy import select

        from facerec.storage.schema import idempotency_keys

        async with state.engine.connect() as conn:
            rows = await conn.execute(select(idempotency_keys.c.body))
            return [bytes(r[0]) for r in rows if r[0] is not None]

    assert any(marker.encode() in b for b in client.portal.call(stored_bodies))
    erased = client.delete(f"{API}/persons/{first.json()['person_id']}")
    assert erased.status_code == 200
    assert not any(marker.encode() in b for b in client.portal.call(stored_bodies))


def test_a_failed_request_stores_nothing(client: TestClient) -> None:
    key = str(uuid.uuid4())
    body = {"person_name": "Nobody", "face_image_base64": b64(b"not an image")}
    body["collection"] = COLLECTION
    for _ in range(2):  # the retry runs again (and fails again): no response was stored
        failed = client.post(API + "/add-face", json=body, headers={"Idempotency-Key": key})
        assert failed.status_code == 400 and "Idempotent-Replayed" not in failed.headers


def test_concurrent_duplicates_enroll_once(client: TestClient) -> None:
    name = f"Concurrent {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    body = {
        "person_name": name,
        "face_image_base64": b64(grace_hopper_jpeg()),
        "collection": COLLECTION,
    }

    def send(_: int) -> tuple[int, bytes, bool]:
        r = client.post(API + "/add-face", json=body, headers={"Idempotency-Key": key})
        return r.status_code, r.content, r.headers.get("Idempotent-Replayed") == "true"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(send, range(4)))
    assert [status for status, _, _ in results] == [200] * 4
    assert len({content for _, content, _ in results}) == 1
    assert sum(1 for _, _, replayed in results if not replayed) == 1
    persons = persons_named(client, name)
    assert len(persons) == 1 and persons[0]["face_count"] == 1


def test_upload_and_register_multiple_take_keys(client: TestClient) -> None:
    name = f"Upload {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    sent = []
    for boundary_noise in ("a", "b"):  # a new multipart boundary on each retry
        sent.append(
            client.post(
                API + "/add-face-upload",
                files={"file": (f"{boundary_noise}.jpg", grace_hopper_jpeg(), "image/jpeg")},
                data={"person_name": name, "collection": COLLECTION},
                headers={"Idempotency-Key": key},
            )
        )
    assert [r.status_code for r in sent] == [200, 200]
    assert sent[1].headers["Idempotent-Replayed"] == "true"
    assert len(persons_named(client, name)) == 1
    other_image = client.post(
        API + "/add-face-upload",
        files={"file": ("c.png", astronaut_png(), "image/png")},
        data={"person_name": name, "collection": COLLECTION},
        headers={"Idempotency-Key": key},
    )
    assert other_image.status_code == 409

    employee = f"E-{uuid.uuid4().hex[:8]}"
    register = {
        "full_name": "Grace Registered",
        "employee_id": employee,
        "images": [b64(grace_hopper_jpeg())],
        "collection": COLLECTION,
    }
    reg_key = str(uuid.uuid4())
    first = client.post(
        API + "/register-multiple", json=register, headers={"Idempotency-Key": reg_key}
    )
    again = client.post(
        API + "/register-multiple", json=register, headers={"Idempotency-Key": reg_key}
    )
    assert first.status_code == 200 and again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == first.content
    # Without the key the same request is a duplicate employee, as before.
    assert client.post(API + "/register-multiple", json=register).status_code == 409


# --- values that could not be stored and returned ---------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"person_name": "Grace\u0000Hopper"}, "invalid_name"),
        ({"metadata": {"note": "a\u0000b"}}, "invalid_metadata"),
        ({"metadata": {"a\u0000": 1}}, "invalid_metadata"),
        ({"metadata": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "invalid_metadata"),
        ({"metadata": {f"k{i}": i for i in range(65)}}, "invalid_metadata"),
        ({"metadata": {"big": "x" * 17000}}, "invalid_metadata"),
    ],
)
def test_unstorable_values_are_422(client: TestClient, fields: dict[str, Any], code: str) -> None:
    name = f"Refused {uuid.uuid4().hex[:8]}"
    body = {
        "person_name": name,
        "face_image_base64": b64(grace_hopper_jpeg()),
        "collection": COLLECTION,
        **fields,
    }
    refused = client.post(API + "/add-face", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == code
    assert persons_named(client, name) == []


def test_patch_with_a_nul_is_422(client: TestClient) -> None:
    name = f"Patched {uuid.uuid4().hex[:8]}"
    added = client.post(
        API + "/add-face",
        json={
            "person_name": name,
            "face_image_base64": b64(grace_hopper_jpeg()),
            "collection": COLLECTION,
        },
    )
    person_id = added.json()["person_id"]
    patched = client.patch(f"{API}/persons/{person_id}", json={"metadata": {"x": "\u0000"}})
    assert patched.status_code == 422 and patched.json()["error"]["code"] == "invalid_metadata"
    client.delete(f"{API}/persons/{person_id}")


# --- PostgreSQL outages through a TCP proxy ---------------------------------------------------


class TcpProxy:
    """127.0.0.1:port → target, on its own event loop thread; ``down()`` refuses new connections
    and cuts the open ones, as a database crash would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def up(self) -> None:
        self._run(self._up())

    def down(self) -> None:
        self._run(self._down())

    def close(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, RuntimeError):
                pass
            finally:
                sink.transport.abort()
                self.writers.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def _admin(sql: str) -> None:
    import asyncpg

    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def proxied_postgres() -> Iterator[tuple[TcpProxy, str]]:
    name = f"facerec_outage_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable(
            f"PostgreSQL at {POSTGRES_URL} ({exc})",
            "start it: pg_ctlcluster --skip-systemctl-redirect 15 main start",
        )
    url = make_url(POSTGRES_URL)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        yield proxy, str(url.set(database=name, host="127.0.0.1", port=proxy.port))
    finally:
        proxy.close()
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.postgres
def test_postgres_outage_is_503_and_heals_by_itself(
    tmp_path: Path, proxied_postgres: tuple[TcpProxy, str]
) -> None:
    proxy, db_url = proxied_postgres
    settings = Settings(
        db={"url": db_url},
        cache={"redis_url": None},
        server={"log_dir": tmp_path / "logs"},
        models={"model_dir": tmp_path / "models", "preload": ["retinaface", "dlib_resnet"]},
        index={"index_dir": tmp_path / "index"},
    )
    grace = b64(grace_hopper_jpeg())
    with TestClient(create_app(settings)) as client:
        # Started while the database is down: not ready, says why, retries by itself.
        wait_for(
            lambda: client.get("/ready").json()["components"].get("storage") == "unavailable",
            30,
            "/ready to report storage unavailable",
        )
        assert client.get("/ready").status_code == 503
        early = client.post(
            API + "/add-face", json={"person_name": "E", "face_image_base64": grace}
        )
        assert early.status_code == 503 and early.json()["error"]["code"] == "not_ready"
        proxy.up()
        wait_ready(client, timeout=60)
        assert client.get("/ready").json()["components"]["storage"] == "ok"
        added = client.post(
            API + "/add-face", json={"person_name": "G", "face_image_base64": grace}
        )
        assert added.status_code == 200, added.text
        person_id = added.json()["person_id"]

        proxy.down()
        statuses: dict[str, list[int]] = {"add": [], "recognize": [], "get": []}
        for _ in range(3):
            r = client.post(
                API + "/add-face", json={"person_name": "X", "face_image_base64": grace}
            )
            statuses["add"].append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "storage_unavailable"
                assert r.headers["Retry-After"]
            r = client.post(API + "/recognize", json={"face_image_base64": grace})
            statuses["recognize"].append(r.status_code)
            r = client.get(f"{API}/persons/{person_id}")
            statuses["get"].append(r.status_code)
            if r.status_code == 503:
                assert r.json()["error"]["code"] == "storage_unavailable"
        assert set(statuses["add"]) == {503}, statuses
        assert set(statuses["get"]) <= {200, 503} and set(statuses["recognize"]) <= {200, 503}
        wait_for(lambda: client.get("/ready").status_code == 503, 5, "/ready to turn 503")
        ready = client.get("/ready").json()
        assert ready["components"]["storage"] == "unavailable"
        # Detection needs no database: it keeps answering.
        detect = client.post("/api/face-detection/detect", json={"image_base64": grace})
        assert detect.status_code == 200

        proxy.up()
        wait_for(lambda: client.get("/ready").status_code == 200, 10, "/ready to turn 200")
        again = client.post(
            API + "/add-face", json={"person_name": "Y", "face_image_base64": grace}
        )
        assert again.status_code == 200, again.text
        found = client.post(API + "/recognize", json={"face_image_base64": grace})
        assert found.status_code == 200
        # Both enrolled Grace photos are found (two persons, so no single best match).
        matched = {m["person_id"] for m in found.json()["matches"]}
        assert {person_id, again.json()["person_id"]} <= matched
        # Nothing half-written: every person has its face.
        persons = client.get(API + "/persons").json()["persons"]
        assert persons and all(p["face_count"] >= 1 for p in persons)
