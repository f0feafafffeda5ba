"""Shared test fixtures.

Tests that need a real backend (PostgreSQL, Redis, pgvector via pgserver) or the reference weights
in ../shared/models call :func:`unavailable`. On a developer's machine without them the test skips
with a message saying how to run it; with ``FACEREC_TEST_STRICT=1`` (set by ``.ci/run``) a missing
backend fails the test instead, so CI can never go green by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_MODELS = Path(os.environ.get("FACEREC_SHARED_MODELS", REPO.parent / "shared" / "models"))
SHARED_FACES = Path(os.environ.get("FACEREC_SHARED_FACES", REPO.parent / "shared" / "faces-dev"))
POSTGRES_URL = os.environ.get(
    "FACEREC_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FACEREC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
STRICT = os.environ.get("FACEREC_TEST_STRICT", "") == "1"

# The private PostgreSQL/Redis fixtures of tests/faults and tests/deploy.
pytest_plugins = ["tests.private_servers"]


def unavailable(what: str, how: str) -> NoReturn:
    """Skip (developer machine) or fail (CI) because ``what`` is missing; ``how`` says the fix."""
    message = f"{what} is not available: {how}"
    if STRICT:
        pytest.fail(f"{message} (FACEREC_TEST_STRICT=1: CI must not skip this)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        unavailable(
            f"reference weights at {SHARED_MODELS}",
            "put the shared/ folder beside the checkout or set FACEREC_SHARED_MODELS",
        )
    return SHARED_MODELS
