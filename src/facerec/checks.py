"""System checks run before the service binds its port (``facerec serve``) and by
``facerec check``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facerec.config import Settings
from facerec.errors import FaceRecError


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def _python() -> str:
    if sys.version_info < (3, 11):  # noqa: UP036 - the package can be installed by hand anywhere
        raise RuntimeError(f"Python {sys.version.split()[0]} found; 3.11 or newer is required")
    return sys.version.split()[0]


def _module(name: str, dist: str) -> Callable[[], str]:
    def check() -> str:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise RuntimeError(f"cannot import {name} ({exc}); pip install {dist}") from exc
        return str(getattr(module, "__version__", "installed"))

    return check


def _default_models(settings: Settings) -> Callable[[], str]:
    def check() -> str:
        from facerec.inference.base import FaceDetector, FaceEmbedder
        from facerec.inference.manager import ModelManager
        from facerec.inference.registry import build_models
        from facerec.inference.types import ModelTask
        from facerec.values import Detection

        manager = ModelManager(build_models(settings), settings.models)
        blank = np.full((128, 128, 3), 127, np.uint8)
        detector = manager.resolve(ModelTask.DETECTION, settings.models.default_detector)
        with manager.use(detector, FaceDetector) as model:
            model.detect(blank, conf_threshold=0.5, iou_threshold=0.4, max_faces=1)
        loaded = [detector]
        names = manager.installed(ModelTask.EMBEDDING)
        if names:
            embedder = manager.resolve(ModelTask.EMBEDDING, settings.models.default_embedder)
            from facerec.values import BBox

            face = Detection(
                BBox(32, 32, 96, 96),
                0.99,
                np.array([[50, 55], [78, 55], [64, 70], [53, 85], [75, 85]], np.float32),
            )
            with manager.use(embedder, FaceEmbedder) as emb:
                emb.embed(blank, [face])
            loaded.append(embedder)
        manager.unload_all()
        return "loaded and ran: " + ", ".join(loaded) + f" on {manager.runtime.providers[0]}"

    return check


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity: a container's or taskset's limit)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def core_advice(settings: Settings) -> str | None:
    """What to set when the default embedder can make fewer runs at once than one worker
    process has cores (dlib's ResNet holds the GIL: one run per helper process, or one in the
    process itself); None when there is nothing to say. Reads the models' metadata, loads
    nothing."""
    from facerec.inference.manager import ModelManager
    from facerec.inference.registry import build_models
    from facerec.inference.types import ModelTask

    cores = usable_cores()
    if settings.server.workers > 1 or cores < 2:
        return None
    manager = ModelManager(build_models(settings), settings.models)
    try:
        embedder = manager.resolve(ModelTask.EMBEDDING, settings.models.default_embedder)
    except FaceRecError:  # none installed, or an unknown name: the default models check says
        return None
    runs = manager.peek(embedder).concurrent_runs(manager.runtime)
    if runs is None or runs >= cores:
        return None
    return (
        f"the default embedder {embedder} makes {runs} run(s) at a time here (it holds Python's "
        f"GIL: one run per helper process, models.dlib_processes = "
        f"{settings.models.dlib_processes}); FACEREC_MODELS__DLIB_PROCESSES={cores} embeds on "
        f"all {cores} cores, ~65 MiB per helper (docs/performance.md)"
    )


def _cores(settings: Settings) -> Callable[[], str]:
    def check() -> str:
        advice = core_advice(settings)
        if advice is not None:
            return advice
        return f"{usable_cores()} usable, {settings.server.workers} worker process(es)"

    return check


def _writable(settings: Settings) -> Callable[[], str]:
    def check() -> str:
        paths = [settings.server.log_dir, settings.models.model_dir]
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-check"
            probe.write_text("ok")
            probe.unlink()
        return ", ".join(str(p) for p in paths)

    return check


def run_checks(settings: Settings, *, with_models: bool = True) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[], str]]] = [
        ("python", _python),
        ("fastapi", _module("fastapi", "fastapi")),
        ("uvicorn", _module("uvicorn", "uvicorn")),
        ("onnxruntime", _module("onnxruntime", "onnxruntime")),
        ("opencv", _module("cv2", "opencv-python")),
        ("numpy", _module("numpy", "numpy")),
        ("dlib", _module("dlib", "dlib-bin")),
        ("directories writable", _writable(settings)),
    ]
    if with_models:
        checks.append(("default models", _default_models(settings)))
        checks.append(("cores", _cores(settings)))
    results = []
    for name, check in checks:
        try:
            results.append(CheckResult(name, True, check()))
        except Exception as exc:
            results.append(CheckResult(name, False, str(exc)))
    return results


def format_table(results: list[CheckResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"{'check':<{width}}  status  detail", f"{'-' * width}  ------  ------"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.detail}")
    return "\n".join(lines)
