"""HNSW index snapshots on disk, so a restart loads an index instead of rebuilding it.

One file per (collection, space), named after the database's instance id (a random number fixed
when the database was created), so databases sharing a directory never read each other's files.
A snapshot records the change-log seq it reflects; the registry replays the log from there.
Snapshots may hold faces erased since they were written: the registry deletes a snapshot as soon
as it sees a removal in its index (unless the snapshot was written at or after the removal's
seq, by a process that had applied it), and whenever it cannot prove a snapshot current.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facerec.storage.hnsw_snapshot import PARTIAL_SUFFIX, abandoned, peek
from facerec.storage.index_options import IndexOptions
from facerec.storage.models import EmbeddingSpace
from facerec.storage.projection import graph_dim_for
from facerec.storage.quantised_rows import DtypeSetting, graph_dtype
from facerec.storage.vector_index import HnswIndex
from facerec.values import Metric

log = logging.getLogger(__name__)

# A partial snapshot untouched this long is abandoned, where the file system has no locks.
PARTIAL_STALE_S = 3600.0


@dataclass(frozen=True)
class Snapshot:
    index: HnswIndex
    seq: int
    owners: dict[str, str]  # face id → person id


class SnapshotStore:
    """``dtype``, ``graph_dim`` and ``connectivity``: the graph wanted (a snapshot of another
    type, projection setting or number of links per face is deleted, so the index is rebuilt
    as configured; None: any number of links); ``expansion_search``: the
    search breadth of a restored graph (the configured one, not the one it was saved with:
    one for every space, or one per metric; None: as saved); ``mmap``: map the exact rows
    copy-on-write (see ``hnsw_snapshot``); ``huge_pages``: collapse a restored graph into 2 MiB
    pages (see ``huge_pages``)."""

    def __init__(
        self,
        directory: Path | None,
        *,
        dtype: DtypeSetting = "auto",
        graph_dim: int = 0,
        connectivity: int | None = None,
        expansion_search: int | Callable[[Metric], int] | None = None,
        mmap: bool = False,
        huge_pages: bool = True,
    ) -> None:
        self.directory = directory
        self.dtype: DtypeSetting = dtype
        self.graph_dim = graph_dim
        self.connectivity = connectivity
        self.expansion_search = (
            (lambda _: expansion_search) if isinstance(expansion_search, int) else expansion_search
        )
        self.mmap = mmap
        self.huge_pages = huge_pages
        self.instance = 0  # set once the database's instance id is known

    @classmethod
    def configured(cls, options: IndexOptions) -> SnapshotStore:
        """The store of the graphs ``options`` asks for."""
        return cls(
            options.index_dir,
            dtype=options.dtype,
            graph_dim=options.graph_dim,
            connectivity=options.connectivity,
            expansion_search=options.search_ef,
            mmap=options.mmap_snapshots,
            huge_pages=options.huge_pages,
        )

    def path(self, collection: str, space: str | None) -> Path:
        assert self.directory is not None
        space_part = _digest(space) if space is not None else "*"
        return self.directory / f"{self.instance:016x}-{_digest(collection)}-{space_part}.hnsw"

    def claim_path(self, collection: str, space: str) -> Path:
        """The lock file of (collection, space)'s graph builds (``build_claims``)."""
        return self.path(collection, space).with_suffix(".build")

    def summary(self, collection: str, space: str) -> tuple[int, int] | None:
        """(faces its graph was built with, seq) of the snapshot; None without one. Blocking
        (reads the start of the file): run it in a thread."""
        return None if self.directory is None else peek(self.path(collection, space))

    def built_faces(self, collection: str, space: str) -> int | None:
        """How many faces the snapshot's graph was built with; None without a snapshot.
        Blocking: run it in a thread."""
        found = self.summary(collection, space)
        return None if found is None else found[0]

    def write(
        self, collection: str, space: str, index: HnswIndex, seq: int, owners: dict[str, str]
    ) -> bool:
        """Write the snapshot, unless the one there holds a graph built with more faces
        (another process's rebuild, which this process loads rather than overwrites), is this
        one already (the same graph at the same seq: a stop right after a start writes
        nothing), or the directory refuses it (logged); returns whether it wrote. Blocking:
        run it in a thread."""
        path = self.path(collection, space)
        summary = self.summary(collection, space)
        if summary == (index.built_faces, seq):
            return False
        there = None if summary is None else summary[0]
        if there is not None and there > index.built_faces:
            log.info(
                "kept the snapshot of %s/%s: built with %d faces, not %d",
                collection,
                space,
                there,
                index.built_faces,
            )
            return False
        extra = {"instance": self.instance, "collection": collection, "seq": seq, "owners": owners}
        try:
            index.save(path, extra)
        except OSError as exc:  # a read-only or full index_dir: the graph in memory serves on
            log.warning("the snapshot of %s/%s was not written: %s", collection, space, exc)
            return False
        return True

    def read(
        self, collection: str, space: EmbeddingSpace, oldest: int, newest: int
    ) -> Snapshot | None:
        """The snapshot if it exists, fits ``space`` and has ``oldest <= seq <= newest``;
        an unusable one is deleted. Blocking: run it in a thread."""
        if self.directory is None:
            return None
        path = self.path(collection, space.name)
        if not path.exists():
            return None
        try:
            index, extra = HnswIndex.load_with_extra(
                path, mmap=self.mmap, huge_pages=self.huge_pages
            )
            snapshot = Snapshot(index, int(extra["seq"]), dict(extra["owners"]))
            instance = int(extra["instance"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            log.warning("deleting unreadable index snapshot %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return None
        if (
            instance != self.instance
            or index.dim != space.dim
            or index.metric != space.metric
            or index.dtype != graph_dtype(self.dtype, space.metric)
            or index.graph_dim != graph_dim_for(self.graph_dim, space.dim, space.metric)
            or self.connectivity not in (None, index.connectivity)
            or not oldest <= snapshot.seq <= newest
        ):
            path.unlink(missing_ok=True)  # unusable, and it may hold faces erased since
            return None
        if self.expansion_search is not None:
            index.expansion_search = self.expansion_search(index.metric)
        return snapshot

    def forget(
        self, collection: str, space: str | None = None, *, before: int | None = None
    ) -> None:
        """Delete the snapshot of (collection, space); with ``before`` (the seq of a removal),
        only a snapshot older than that: one written at or after it was written by a process
        that had applied the removal (another worker's, which a lagging one must not delete).
        With ``space`` None (the collection was removed): every space's snapshot, and the build
        claim files beside them (a build still holding one is of the removed collection)."""
        if self.directory is None:
            return
        path = self.path(collection, space)
        if before is not None and space is not None:
            summary = peek(path)
            if summary is not None and summary[1] >= before:
                return
        if space is not None:
            path.unlink(missing_ok=True)
            return
        for pattern in (path.name, path.with_suffix(".build").name):
            for found in path.parent.glob(pattern):
                found.unlink(missing_ok=True)

    def sweep_partial(self) -> int:
        """Delete the partial snapshots of writers that stopped mid-write (a crash, a kill):
        each holds a gallery's vectors, faces erased since among them, and gigabytes at scale.
        One still being written is left alone (see ``abandoned``). Returns how many it
        deleted. Blocking: run it in a thread."""
        if self.directory is None:
            return 0
        removed = 0
        for found in self.directory.glob(f"{self.instance:016x}-*{PARTIAL_SUFFIX}"):
            if abandoned(found, PARTIAL_STALE_S):
                found.unlink(missing_ok=True)
                removed += 1
        if removed:
            log.warning("deleted %d partial index snapshots left by a stopped writer", removed)
        return removed

    def forget_all(self) -> None:
        if self.directory is not None:
            for found in self.directory.glob(f"{self.instance:016x}-*.hnsw"):
                found.unlink(missing_ok=True)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]
