"""Faults under load against a real service process on private PostgreSQL and Redis servers.

(a) PostgreSQL stopped and restarted mid-load: only 200 and 503 ``storage_unavailable`` (never
    500), ``/ready`` 503 during the outage and 200 after it without restarting the service, every
    acknowledged enrollment in the database afterwards, no person without faces.
(b) Redis killed mid-load: requests keep succeeding.
(c) the service SIGKILLed during an enrollment burst and restarted: every acknowledged enrollment
    is there, no person without faces.

Each test is bounded in requests and time; every figure is printed (``pytest -s``) as
``FAULTS ...`` lines.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.faults.conftest import PrivatePostgres, PrivateRedis, Service, stop_process
from tests.images import grace_hopper_jpeg

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

API = "/api/face-recognition"
GRACE = base64.b64encode(grace_hopper_jpeg()).decode()


@dataclass
class Load:
    """Client threads enrolling (one new person each) and recognising, until stopped."""

    base: str
    threads: int = 3
    max_requests: int = 600
    recognize: bool = True
    statuses: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)  # person ids answered 200
    unexpected: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def _record(self, label: str, response: httpx.Response | None, error: str = "") -> None:
        with self._lock:
            if response is None:
                self.statuses[f"{label} {error}"] += 1
                return
            code = ""
            if response.status_code != 200:
                code = response.json().get("error", {}).get("code", "")
            self.statuses[f"{label} {response.status_code} {code}".strip()] += 1
            if response.status_code not in (200, 503) or (
                response.status_code == 503 and code != "storage_unavailable"
            ):
                self.unexpected.append(f"{label} {response.status_code} {response.text[:300]}")

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self._stop.is_set() and self.total < self.max_requests:
                person_id = f"load-{uuid.uuid4().hex[:12]}"
                body = {"person_name": "Load", "person_id": person_id, "face_image_base64": GRACE}
                try:
                    response = client.post(API + "/add-face", json=body)
                except httpx.HTTPError as exc:  # the service itself went away (test c)
                    self._record("enroll", None, type(exc).__name__)
                    time.sleep(0.05)
                    continue
                self._record("enroll", response)
                if response.status_code == 200:
                    with self._lock:
                        self.acknowledged.append(person_id)
                else:  # a client honouring Retry-After, shortened to keep the test brief
                    time.sleep(0.2)
                if self.recognize:
                    try:
                        found = client.post(API + "/recognize", json={"face_image_base64": GRACE})
                    except httpx.HTTPError as exc:
                        self._record("recognize", None, type(exc).__name__)
                        continue
                    self._record("recognize", found)


async def _database_counts(url: str, person_ids: list[str]) -> tuple[int, int]:
    """(acknowledged persons missing or without faces, persons without faces overall)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch(
            "SELECT p.id FROM persons p JOIN faces f ON f.person_id = p.id"
            " WHERE p.id = ANY($1::text[]) GROUP BY p.id",
            person_ids,
        )
        lost = len(set(person_ids) - {r["id"] for r in rows})
        orphans = await conn.fetchval(
            "SELECT COUNT(*) FROM persons p"
            " WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.person_id = p.id)"
        )
        return lost, int(orphans)
    finally:
        await conn.close()


def poll(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def ready_status(service: Service) -> int:
    try:
        return httpx.get(service.base + "/ready", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def report(name: str, **figures: object) -> None:
    print(f"FAULTS {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_redis_killed_mid_load(service: Service, private_redis: PrivateRedis) -> None:
    load = Load(service.base, max_requests=200)
    load.start()
    time.sleep(2)
    stop_process(private_redis.process, signal.SIGKILL)
    killed_at = load.total
    time.sleep(3)
    load.stop()
    report("redis", requests=load.total, after_kill=load.total - killed_at, **load.statuses)
    assert load.unexpected == []
    assert load.total - killed_at > 0
    assert {key.split()[1] for key in load.statuses} == {"200"}, load.statuses


def test_postgres_stopped_and_restarted_mid_load(
    service: Service, private_postgres: PrivatePostgres
) -> None:
    load = Load(service.base, max_requests=600)
    load.start()
    time.sleep(2)
    private_postgres.stop()
    stopped = time.monotonic()
    went_unready = poll(lambda: ready_status(service) == 503, 10)
    time.sleep(3)
    during = ready_status(service)
    private_postgres.start()
    outage_s = time.monotonic() - stopped
    came_back = poll(lambda: ready_status(service) == 200, 30)
    recovered_s = time.monotonic() - stopped
    acknowledged_before = len(load.acknowledged)
    time.sleep(2)  # keep loading after the recovery
    load.stop()
    after_recovery = len(load.acknowledged) - acknowledged_before
    lost, orphans = asyncio.run(_database_counts(private_postgres.url, load.acknowledged))
    report(
        "postgres",
        requests=load.total,
        outage_s=round(outage_s, 1),
        ready_again_after_s=round(recovered_s, 1),
        acknowledged_enrollments=len(load.acknowledged),
        acknowledged_after_recovery=after_recovery,
        lost=lost,
        persons_without_faces=orphans,
        **load.statuses,
    )
    assert went_unready and during == 503 and came_back
    assert after_recovery > 0, "no enrollment succeeded after the database came back"
    assert load.unexpected == [], load.unexpected[:5]
    assert any(" 503 " in f"{key} " for key in load.statuses), "the outage was not observed"
    assert lost == 0 and orphans == 0


def test_service_killed_during_enrollment_burst(
    service: Service, private_postgres: PrivatePostgres
) -> None:
    load = Load(service.base, threads=4, max_requests=400, recognize=False)
    load.start()
    time.sleep(3)
    service.kill()
    killed_after = load.total
    time.sleep(0.5)
    load.stop()
    service.start()
    lost, orphans = asyncio.run(_database_counts(private_postgres.url, load.acknowledged))
    report(
        "sigkill",
        requests=load.total,
        before_kill=killed_after,
        acknowledged_enrollments=len(load.acknowledged),
        lost=lost,
        persons_without_faces=orphans,
        **load.statuses,
    )
    assert load.acknowledged and lost == 0 and orphans == 0
    assert load.unexpected == []
