"""Private servers for the fault tests, each on a spare 127.0.0.1 port, started and stopped by PID
(bench/faults.py, shared with bench/bench_reliability.py): PostgreSQL (``initdb`` + ``postgres``),
Redis (``redis-server --save ''``) and the service as a real uvicorn process.

Missing binaries skip on a developer machine and fail in CI (``FACEREC_TEST_STRICT=1``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench.faults import (
    PrivatePostgres,
    PrivateRedis,
    Service,
    service_env,
)


@pytest.fixture(scope="module")
def service(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("faults-service")
    server = Service(service_env(private_postgres.url, private_redis.url, work), work)
    server.start()
    yield server
    server.stop()
