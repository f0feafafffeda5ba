"""Fixtures for the tests that start their own PostgreSQL and Redis on spare 127.0.0.1 ports
(bench/faults.py), stopped by PID at the end of the module: tests/faults and tests/deploy.
Missing binaries skip on a developer machine and fail in CI (``FACEREC_TEST_STRICT=1``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench.faults import (
    PrivatePostgres,
    PrivateRedis,
    UnavailableError,
    start_private_postgres,
    start_private_redis,
)

from tests.conftest import unavailable


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    try:
        server = start_private_postgres()
    except UnavailableError as exc:
        unavailable(exc.what, exc.how)
    yield server
    server.close()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    try:
        server = start_private_redis()
    except UnavailableError as exc:
        unavailable(exc.what, exc.how)
    yield server
    server.stop()
