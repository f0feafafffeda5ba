"""Two real app instances on one database stay consistent: a face enrolled through A is found by B
at once, a person deleted through A is gone from B at once. On SQLite (one file) and on the
machine's PostgreSQL with the shared Redis cache."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from facerec.app import create_app
from facerec.config import Settings
from tests.api.conftest import b64, wait_ready
from tests.conftest import POSTGRES_URL, REDIS_URL, unavailable
from tests.images import astronaut_png, grace_hopper_jpeg

API = "/api/face-recognition"


def settings_for(tmp: Path, name: str, db_url: str, redis_url: str | None) -> Settings:
    return Settings(
        db={"url": db_url},
        cache={"redis_url": redis_url, "pending_purges_file": tmp / f"purges-{name}.json"},
        server={"log_dir": tmp / f"logs-{name}"},
        models={"model_dir": tmp / "models", "preload": ["retinaface", "dlib_resnet"]},
        index={"index_dir": tmp / f"index-{name}"},
    )


def two_clients(
    tmp: Path, db_url: str, redis_url: str | None
) -> Iterator[tuple[TestClient, TestClient]]:
    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            client = stack.enter_context(
                TestClient(create_app(settings_for(tmp, name, db_url, redis_url)))
            )
            wait_ready(client)
            clients.append(client)
        yield clients[0], clients[1]


def check_consistency(a: TestClient, b: TestClient) -> None:
    grace = b64(grace_hopper_jpeg())
    person_id = f"grace-{uuid.uuid4().hex[:8]}"
    # B has built its index (and cached what it saw) before A writes anything.
    before = b.post(API + "/recognize", json={"face_image_base64": grace}).json()
    assert all(m["person_id"] != person_id for m in before["matches"])
    added = a.post(
        API + "/add-face",
        json={"person_name": "Grace Hopper", "person_id": person_id, "face_image_base64": grace},
    )
    assert added.status_code == 200, added.text
    seen = b.post(API + "/recognize", json={"face_image_base64": grace}).json()
    assert seen["best_match"]["person_id"] == person_id
    assert b.get(f"{API}/persons/{person_id}").json()["person"]["person_name"] == "Grace Hopper"
    renamed = a.patch(f"{API}/persons/{person_id}", json={"person_name": "Amazing Grace"})
    assert renamed.status_code == 200
    seen = b.post(API + "/recognize", json={"face_image_base64": grace}).json()
    assert seen["best_match"]["person_name"] == "Amazing Grace"
    assert a.delete(f"{API}/persons/{person_id}").status_code == 200
    gone = b.post(API + "/recognize", json={"face_image_base64": grace}).json()
    assert all(m["person_id"] != person_id for m in gone["matches"])
    assert b.get(f"{API}/persons/{person_id}").status_code == 404
    stranger = b.post(API + "/recognize", json={"face_image_base64": b64(astronaut_png())}).json()
    assert all(m["person_id"] != person_id for m in stranger["matches"])


def test_two_instances_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    for a, b in two_clients(tmp_path, url, None):
        check_consistency(a, b)


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
def postgres_database() -> Iterator[str]:
    name = f"facerec_multi_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable(
            f"PostgreSQL at {POSTGRES_URL} ({exc})",
            "start it: pg_ctlcluster --skip-systemctl-redirect 15 main start",
        )
    try:
        yield str(make_url(POSTGRES_URL).set(database=name))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        unavailable(f"Redis at {REDIS_URL} ({exc})", "start redis-server on 127.0.0.1:6379")
    return REDIS_URL


@pytest.mark.postgres
@pytest.mark.redis
def test_two_instances_on_postgres_with_redis(
    tmp_path: Path, postgres_database: str, redis_url: str
) -> None:
    import redis

    shared = redis.Redis.from_url(redis_url)
    before = set(shared.scan_iter(match="facerec:img:*"))
    for a, b in two_clients(tmp_path, postgres_database, redis_url):
        check_consistency(a, b)
        # No probe result (a query photo's embedding) ever reaches the shared cache.
        assert set(shared.scan_iter(match="facerec:img:*")) - before == set()


def test_redis_down_keeps_answering_from_the_database(tmp_path: Path) -> None:
    """A Redis URL that refuses connections: every call still answers 200 from the database and
    the failures are counted in /metrics."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'redis-down.db'}"
    settings = settings_for(tmp_path, "a", url, "redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        grace = b64(grace_hopper_jpeg())
        added = client.post(
            API + "/add-face", json={"person_name": "G", "face_image_base64": grace}
        )
        assert added.status_code == 200, added.text
        person_id = added.json()["person_id"]
        for _ in range(2):
            found = client.post(API + "/recognize", json={"face_image_base64": grace})
            assert found.status_code == 200
            assert found.json()["best_match"]["person_id"] == person_id
        assert client.delete(f"{API}/persons/{person_id}").status_code == 200
        metrics = client.get("/metrics").text
        line = next(x for x in metrics.splitlines() if x.startswith("facerec_cache_errors_total"))
        assert float(line.split()[-1]) > 0
