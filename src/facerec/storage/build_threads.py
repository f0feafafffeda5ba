"""Long graph builds on daemon threads, so that they never hold up the process's exit.

``asyncio.to_thread`` runs work on the loop's default executor, whose threads the interpreter
joins at exit (and ``asyncio.run`` waits for on its way out): a usearch build cannot be stopped
midway, so a shutdown during a rebuild at a million faces would wait minutes for a graph it then
drops. A daemon thread is not waited for: the process exits with the build unfinished (its
snapshots are written before, by the registry's ``close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def in_daemon_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a new daemon thread; cancelling the await leaves the thread
    to run to its end, its result dropped."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.cancelled():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]  # (T, when no error)

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(
        target=run, name=f"facerec-build-{getattr(fn, '__name__', 'work')}", daemon=True
    ).start()
    return await done
