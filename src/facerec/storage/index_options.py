"""Tuning of the in-process vector indexes (backend, HNSW threshold and graph, snapshots)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facerec.config import Settings


@dataclass(frozen=True)
class IndexOptions:
    # "memory": exact → HNSW in this process; "pgvector": HNSW inside PostgreSQL;
    # "auto": pgvector where the extension is installed, memory otherwise.
    backend: str = "auto"
    hnsw_threshold: int = 20_000  # faces in one (collection, space) before switching to HNSW
    index_dir: Path | None = None  # where HNSW snapshots are saved; None: never saved
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64
    build_threads: int = 2
    max_replay: int = 50_000  # further behind than this many changes: rebuild instead
    pgvector_ef_search: int = 100
    snapshot_every_s: float = 300.0  # unsaved changes older than this are snapshotted
    snapshot_every_changes: int = 10_000  # this many unsaved changes are snapshotted at once

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexOptions:
        index = settings.index
        return cls(
            backend=index.backend,
            hnsw_threshold=index.hnsw_threshold,
            index_dir=index.index_dir,
            snapshot_every_s=index.snapshot_every_s,
            snapshot_every_changes=index.snapshot_every_changes,
        )
