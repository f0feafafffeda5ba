"""The inference executor refuses at once when full, and abandoned jobs keep their slot until
their thread is done (so the bound holds)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from facerec.errors import OverloadedError
from facerec.executor import InferenceExecutor


async def test_full_queue_refuses_at_once_and_abandoned_jobs_count() -> None:
    executor = InferenceExecutor(threads=1, max_pending=2)
    gate = threading.Event()
    try:
        running = asyncio.create_task(executor.run(gate.wait, 5.0))
        queued = asyncio.create_task(executor.run(gate.wait, 5.0))
        await asyncio.sleep(0.05)
        assert executor.full and executor.pending == 2
        started = time.perf_counter()
        with pytest.raises(OverloadedError):
            await executor.run(time.sleep, 0)
        assert time.perf_counter() - started < 0.05
        running.cancel()  # the client went away: its job still holds the thread
        await asyncio.sleep(0.05)
        assert executor.pending == 2
        queued.cancel()  # not started yet: cancelled, its slot freed at once
        await asyncio.sleep(0.05)
        assert executor.pending == 1
        gate.set()
        for _ in range(100):
            if executor.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert executor.pending == 0 and not executor.full
        assert await executor.run(sum, [1, 2]) == 3
    finally:
        gate.set()
        executor.shutdown()
