"""Heavy libraries a recognize-only worker never needs stay out of its memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_app_does_not_import_scipy() -> None:
    """scipy.optimize (tagging's and tracking's assignment) costs ~48 MiB of RSS per process:
    it is imported on the first assignment, not with the app."""
    code = (
        "import sys\n"
        "from facerec.app import create_app\n"
        "from facerec.config import Settings\n"
        "create_app(Settings(_env_file=None))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_started_worker_on_a_migrated_database_imports_neither_alembic_nor_redis(
    tmp_path: Path,
) -> None:
    """Alembic with Mako (~10 MiB) is needed only when there is something to migrate, redis
    (~6 MiB) only when it is configured: a worker started (lifespan run, models loaded) on a
    database already at head, without Redis, imports neither. The first start migrates."""
    code = (
        "import sys, time\n"
        "from fastapi.testclient import TestClient\n"
        "from facerec.app import create_app\n"
        "from facerec.config import Settings\n"
        "with TestClient(create_app(Settings(_env_file=None))) as client:\n"
        "    deadline = time.monotonic() + 120\n"
        "    while client.get('/ready').status_code != 200:\n"
        "        assert time.monotonic() < deadline, client.get('/ready').text\n"
        "        time.sleep(0.1)\n"
        "    assert client.get('/ready').json()['components']\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako', 'redis'}))\n"
    )
    env = dict(
        os.environ,
        FACEREC_DB__URL=f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
        FACEREC_INDEX__INDEX_DIR=str(tmp_path / "index"),
        FACEREC_SERVER__LOG_DIR=str(tmp_path / "logs"),
    )
    env.pop("FACEREC_CACHE__REDIS_URL", None)
    seen = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
        )
        assert done.returncode == 0, done.stderr[-2000:]
        seen.append(done.stdout.strip().splitlines()[-1])
    assert seen == ["['alembic', 'mako']", "[]"]


def test_the_assignment_imports_scipy_when_used() -> None:
    import numpy as np

    from facerec.domain.assignment import optimal_assignment

    rows, cols = optimal_assignment(np.array([[1.0, 5.0], [4.0, 2.0]]))
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    rows, cols = optimal_assignment(np.array([[1.0, 5.0], [4.0, 2.0]]), maximize=True)
    assert cols.tolist() == [1, 0]


def test_the_vector_index_and_the_models_load_in_either_order() -> None:
    """usearch (HNSW: a snapshot can load before any model) and onnxruntime share a process in
    either order; usearch 2.26.2-2.26.6 crashed it (SIGSEGV) when imported first, hence the pin
    in pyproject.toml."""
    for first, second in (("usearch.index", "onnxruntime"), ("onnxruntime", "usearch.index")):
        code = f"import {first}\nimport {second}\nprint('both')\n"
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0 and done.stdout.strip() == "both", (first, done.returncode)
