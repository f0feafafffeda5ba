"""Per-stage timing of one request: each stage is recorded once, summed into the response and
observed by the Prometheus stage histogram."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

StageSink = Callable[[str, str, float], None]


class StageTimer:
    def __init__(self, sink: StageSink | None = None) -> None:
        self._sink = sink
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, model: str = "") -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.stages[name] = self.stages.get(name, 0.0) + elapsed
            if self._sink is not None:
                self._sink(name, model, elapsed)

    @property
    def total(self) -> float:
        return sum(self.stages.values())
