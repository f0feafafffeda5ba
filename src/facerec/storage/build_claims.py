"""One graph build per (collection, space) among the processes that share an ``index_dir``.

The worker processes of one service (``--workers``) share ``index_dir``. Before it builds a
graph (the first one of a gallery past the HNSW threshold, or a rebuild of one that has grown),
a process takes an exclusive ``flock`` on the index's claim file, beside its snapshot, and holds
it until the new graph's snapshot is written. A process that finds the claim taken keeps
answering with the index it has and tries again every :data:`POLL_S` seconds; once the claim is
free it loads the snapshot the builder wrote (``adopt``) rather than build a graph of its own,
and builds only when there is none that fits: the builder failed, or died (the kernel drops a
dead process's lock), or an erasure deleted the snapshot meanwhile.

Without an ``index_dir`` every process builds its own graph, and so does a process whose
``index_dir`` refuses the claim file or its lock (read-only, or a file system without locks),
with a warning. ``flock`` holds between processes of one machine; replicas on other machines
each keep their own ``index_dir``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from types import TracebackType

from facerec.storage.shards import ShardKey
from facerec.storage.snapshots import SnapshotStore

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often a process waiting for another's build tries the claim again


class Claim:
    """The right to build one graph; released by closing its file (or by the process's end)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the lock
            self._fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class BuildClaims:
    """Claims on the graph builds of the indexes whose snapshots ``snapshots`` keeps (None,
    or a store without a directory: nothing is shared, every claim is granted)."""

    def __init__(self, snapshots: SnapshotStore | None) -> None:
        self._snapshots = snapshots
        self._warned = False  # (that index_dir refused a claim: said once)

    def try_claim(self, key: ShardKey) -> Claim | None:
        """The claim on ``key``'s build, or None while another process holds it."""
        if not self.shared:
            return Claim(None)
        assert self._snapshots is not None
        path = self._snapshots.claim_path(*key)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            return self._unlocked(exc)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            return self._unlocked(exc)
        except BaseException:
            os.close(fd)
            raise
        return Claim(fd)

    def _unlocked(self, error: OSError) -> Claim:
        """A claim granted without a lock: ``index_dir`` refused the claim file or its lock
        (a read-only directory, a network file system without locks). The build goes ahead,
        as in a process alone; a build that failed here for good would leave the gallery on
        exact search."""
        if not self._warned:
            self._warned = True
            log.warning(
                "index_dir %s cannot hold build claims (%s): each process builds its own graphs",
                self._snapshots.directory if self._snapshots else None,
                error,
            )
        return Claim(None)

    @property
    def shared(self) -> bool:
        return self._snapshots is not None and self._snapshots.directory is not None

    async def claim(self, key: ShardKey, adopt: Callable[[], Awaitable[bool]]) -> Claim | None:
        """Wait until no other process builds ``key``'s graph, then: None when ``adopt`` took
        the graph another process built (from its snapshot), else the claim to build it here."""
        claim = self.try_claim(key)
        if claim is None:
            log.info("the graph of %s/%s is being built by another process: waiting for it", *key)
        while claim is None:
            await asyncio.sleep(POLL_S)
            claim = self.try_claim(key)
        if not self.shared:
            return claim
        try:
            adopted = await adopt()
        except BaseException:
            claim.release()
            raise
        if adopted:
            claim.release()
            return None
        return claim
