"""Heavy libraries a recognize-only worker never needs stay out of its memory."""

from __future__ import annotations

import subprocess
import sys


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
