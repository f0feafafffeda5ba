"""Blocking work (decoding, inference) runs here, never on the event loop.

A bounded thread pool with a bounded queue: when ``max_pending`` jobs are waiting or running, new
ones are refused at once with :class:`~facerec.errors.OverloadedError` (429) instead of queueing
behind work that would take seconds. A job counts until its thread really finishes: a request
that gave up (client gone, timeout) frees its slot only when its job leaves the pool, or at once
if the job had not started (it is cancelled), so abandoned work can never let the queue grow past
the bound. :attr:`full` lets the API refuse before it even reads a request body.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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

    @property
    def full(self) -> bool:
        """Whether a job submitted now would be refused."""
        return self._pending >= self._max_pending

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
            future: Future[T] = self._pool.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        # Cancelling the await cancels a job that has not started; a running one finishes.
        return await asyncio.wrap_future(future)

    def _release(self, _future: object = None) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
