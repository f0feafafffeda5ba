"""Blocking work (decoding, inference) runs here, never on the event loop.

A bounded thread pool with a bounded queue: when more than ``max_pending`` jobs are waiting or
running, new ones are refused with :class:`~facerec.errors.OverloadedError` (429) instead of
queueing forever.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from facerec.errors import OverloadedError

P = ParamSpec("P")
T = TypeVar("T")


class InferenceExecutor:
    def __init__(self, threads: int, max_pending: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="facerec-infer")
        self._max_pending = max_pending
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            if self._pending >= self._max_pending:
                raise OverloadedError(
                    "the service is busy; retry shortly",
                    code="overloaded",
                    pending=self._pending,
                )
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        finally:
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
