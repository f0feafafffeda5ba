"""Tuning of the in-process vector indexes (backend, HNSW threshold and graph, snapshots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from facerec.config import Settings
from facerec.storage.quantised_rows import DtypeSetting
from facerec.values import Metric


@dataclass(frozen=True)
class MilvusOptions:
    """Where and how ``backend="milvus"`` keeps its vectors (docs/milvus.md)."""

    # http(s)://host:19530 (server or cluster), or a path ending in .db (milvus-lite in this
    # process); None: <index_dir>/milvus.db, or data/milvus.db without an index_dir.
    uri: str | None = None
    token: str | None = None  # "user:password" or an API key
    db_name: str | None = None
    collection_prefix: str = "facerec"
    consistency: str = "Strong"
    timeout_s: float = 10.0
    shards: int = 1
    # The HNSW index Milvus builds and searches: M 16 and ef 64 (at least the faces fetched), as
    # measured and sized in docs/milvus.md (HNSW_CONNECTIVITY and HNSW_EXPANSION_SEARCH are the
    # in-process graph's, measured on usearch only).
    hnsw_m: int = 16
    hnsw_ef: int = 64


# HNSW search breadth (ef) where HNSW_EXPANSION_SEARCH is unset. A cosine space's graph is
# quantised or projected, so a recognize's 40 faces are fetched as 160 re-ranked candidates and
# the walk is at least 160 wide whatever ef says; an L2 space's graph (dlib's, f32) is searched
# exactly as wide as ef. On a hard 1M 128-D L2 gallery built as the service builds it, recall@1
# was 0.980 at ef 64 and 0.998 at 256 (the face found showed the right identity for 0.986 and
# 0.9997 of the queries), in 2.5 ms against 0.8 (docs/index.md, "The order a graph is built in").
DEFAULT_EF: dict[Metric, int] = {"cosine": 64, "l2": 256}


@dataclass(frozen=True)
class IndexOptions:
    # "memory": exact → HNSW in this process; "pgvector": HNSW inside PostgreSQL;
    # "milvus": a Milvus server/cluster or milvus-lite (MilvusOptions);
    # "auto": pgvector where the extension is installed, memory otherwise.
    backend: str = "auto"
    hnsw_threshold: int = 20_000  # faces in one (collection, space) before switching to HNSW
    index_dir: Path | None = None  # where HNSW snapshots are saved; None: never saved
    connectivity: int = 32
    expansion_add: int = 128
    expansion_search: int | None = None  # None: DEFAULT_EF for the space's metric (search_ef)
    build_threads: int = 2
    rebuild_growth: float = 2.0  # a graph grown to this × the faces it was built with is rebuilt
    max_replay: int = 50_000  # further behind than this many changes: rebuild instead
    pgvector_ef_search: int = 100
    snapshot_every_s: float = 300.0  # unsaved changes older than this are snapshotted
    snapshot_every_changes: int = 10_000  # this many unsaved changes are snapshotted at once
    # HNSW graph scalar type (auto: i8 for cosine spaces, f32 for L2); f16/i8 graphs are
    # re-ranked exactly over k × rescore candidates.
    dtype: DtypeSetting = "auto"
    rescore: int = 4
    graph_dim: int = 128  # cosine spaces: the graph on this many principal directions; 0: all
    mmap_snapshots: bool = False  # map snapshot rows copy-on-write instead of reading them
    huge_pages: bool = True  # collapse built or restored graphs into 2 MiB pages (Linux)
    ordered_build: bool = True  # a graph's first build takes near faces together (build_order)
    milvus: MilvusOptions = field(default_factory=MilvusOptions)

    def search_ef(self, metric: Metric) -> int:
        """The HNSW search breadth of a ``metric`` space's graph: the configured one, else
        :data:`DEFAULT_EF`'s."""
        return DEFAULT_EF[metric] if self.expansion_search is None else self.expansion_search

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexOptions:
        index = settings.index
        return cls(
            backend=index.backend,
            hnsw_threshold=index.hnsw_threshold,
            index_dir=index.index_dir,
            snapshot_every_s=index.snapshot_every_s,
            snapshot_every_changes=index.snapshot_every_changes,
            dtype=index.hnsw_dtype,
            rescore=index.hnsw_rescore,
            graph_dim=index.hnsw_graph_dim,
            expansion_search=index.hnsw_expansion_search,
            expansion_add=index.hnsw_expansion_add,
            connectivity=index.hnsw_connectivity,
            rebuild_growth=index.hnsw_rebuild_growth,
            mmap_snapshots=index.hnsw_mmap_snapshots,
            huge_pages=index.hnsw_huge_pages,
            milvus=MilvusOptions(
                uri=index.milvus_uri,
                token=index.milvus_token.get_secret_value() if index.milvus_token else None,
                db_name=index.milvus_db_name,
                collection_prefix=index.milvus_collection_prefix,
                consistency=index.milvus_consistency,
                timeout_s=index.milvus_timeout_s,
                shards=index.milvus_shards,
            ),
        )
