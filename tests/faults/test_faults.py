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

import time

import pytest
from bench.faults import (
    Load,
    PrivatePostgres,
    PrivateRedis,
    Service,
    audit_database,
    poll,
    ready_status,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def report(name: str, **figures: object) -> None:
    print(f"FAULTS {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def test_redis_killed_mid_load(service: Service, private_redis: PrivateRedis) -> None:
    load = Load(service.base, max_requests=200)
    load.start()
    time.sleep(2)
    private_redis.kill()
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
    audit = audit_database(private_postgres.url, load)
    lost, orphans = audit.lost, audit.without_faces
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
    load = Load(service.base, threads=4, max_requests=400, cycle=("enroll",))
    load.start()
    time.sleep(3)
    service.kill()
    killed_after = load.total
    time.sleep(0.5)
    load.stop()
    service.start()
    audit = audit_database(private_postgres.url, load)
    lost, orphans = audit.lost, audit.without_faces
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
