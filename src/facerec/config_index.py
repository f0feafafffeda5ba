"""The vector index's settings group (``index``): backend, HNSW graph and snapshots, Milvus.

Apart from :mod:`facerec.config` so that module stays one read; the group is a field of
:class:`~facerec.config.Settings` and is imported from there, like every settings group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


class IndexSettings(BaseModel):
    # auto: pgvector inside PostgreSQL when the extension is there, else in-process; milvus: a
    # Milvus server or cluster (or milvus-lite in this process), see docs/milvus.md.
    backend: Literal["auto", "memory", "pgvector", "milvus"] = "auto"
    # Faces in one (collection, embedding space) before the in-process index switches
    # from exact search to HNSW.
    hnsw_threshold: int = Field(20_000, ge=1)
    # Where HNSW snapshots are persisted (so a restart does not rebuild); None: not persisted.
    index_dir: Path | None = Path("data/index")
    # Snapshots are written when this many changes, or changes this old (s), are unsaved (and
    # on shutdown), so a crash costs a replay of the change log rather than a rebuild.
    snapshot_every_changes: int = Field(10_000, ge=1)
    snapshot_every_s: float = Field(300.0, gt=0)
    # Scalar type of the vectors inside the in-process HNSW graph. i8/f16: a quantised graph
    # (builds and walks faster) plus a float32 copy of every vector; each search re-ranks the
    # graph's k × hnsw_rescore nearest exactly, so distances stay exact (docs/index.md).
    # auto: i8 for cosine models, f32 for L2 ones (dlib).
    hnsw_dtype: Literal["auto", "f32", "f16", "i8"] = "auto"
    hnsw_rescore: int = Field(4, ge=1, le=64)
    # Cosine spaces of more dimensions than this: the graph runs on at most the gallery's top
    # hnsw_graph_dim principal directions (a quarter of the bytes per hop at 512-D): the fewest
    # of 1/2, 3/4 or all of them that keep the gallery's nearest neighbours, kept only when a
    # self-check on the gallery finds what exact search finds; at least 8 candidates more than
    # the faces asked for are re-ranked exactly (docs/index.md). 0: every dimension.
    hnsw_graph_dim: int = Field(128, ge=0, le=4096)
    # Links per face of HNSW graphs built from now on (M; the bottom layer keeps 2M). 32 against
    # 16, side by side on 1M 512-D synthetic galleries: recall@1 0.999 from ef 20 instead of 56
    # (0.23 against 0.31 ms) on one, from ef 48 instead of 80 (0.34 against 0.43 ms) on a harder
    # one, a quarter to a fifteenth of the orphans; at 100k 4-25% slower at equal recall. Builds
    # take 1.1-1.4x as long and the graph ~0.25 KB more per face (BENCHMARKS.md,
    # index_connectivity_*). A snapshot of another M is not loaded: rebuilt in the background.
    hnsw_connectivity: int = Field(32, ge=4, le=128)
    # HNSW search breadth (ef); higher: better recall, slower. Unset: 64 for cosine models'
    # graphs (recall@1 0.9993-1.000 with M 32 on 100k and 1M 512-D synthetic galleries, and a
    # recognize walks at least 160 wide through their re-ranking), 256 for L2 ones (dlib's f32
    # graph: recall@1 0.998 against 0.980 at 64 on a hard 1M 128-D gallery, 2.5 against 0.8 ms;
    # BENCHMARKS.md, index_connectivity_*; storage.index_options.DEFAULT_EF).
    hnsw_expansion_search: int | None = Field(None, ge=1, le=4096)
    # HNSW build breadth (ef_construction) of graphs built from now on. 256 finds more at a
    # given ef (1M 512-D faces, ef 40: recall@1 0.999 against 0.996) but builds ~1.9x as long
    # and each hop costs more: no faster at equal recall (BENCHMARKS.md, index_sweep).
    hnsw_expansion_add: int = Field(128, ge=8, le=4096)
    # An HNSW graph that has grown to this many times the faces it was built with is built
    # again in the background (the current graph answering meanwhile), so its projection,
    # width and orphan check fit the gallery it serves, not the one it started from (a graph
    # built at the 20k threshold and grown to 200k one add at a time: docs/index.md). The
    # build holds a second graph until it is swapped in. 0: never.
    hnsw_rebuild_growth: float = Field(2.0, ge=0)
    # Map the float32 rows of a snapshot copy-on-write instead of reading them at start-up.
    hnsw_mmap_snapshots: bool = False
    # Linux: collapse an HNSW graph, once built or restored, into 2 MiB pages (MADV_COLLAPSE):
    # fewer TLB misses per hop, 8-13% faster searches at 300k-1M faces (BENCHMARKS.md,
    # index_sweep). Elsewhere, or where the kernel refuses, graphs stay on 4 KiB pages.
    hnsw_huge_pages: bool = True
    # backend=milvus: http(s)://host:19530 (a Milvus server or cluster) or a file path ending in
    # .db (milvus-lite, embedded in this process); None: <index_dir>/milvus.db.
    milvus_uri: str | None = None
    # "user:password" or an API key for the Milvus server; None: no authentication.
    milvus_token: SecretStr | None = None
    # Milvus database (None: the server's default) and the prefix of every collection created.
    milvus_db_name: str | None = None
    milvus_collection_prefix: str = Field("facerec", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
    # Strong: a search sees every write acknowledged before it (the default, and what replicas
    # sharing one Milvus need); Bounded/Session trade that for latency.
    milvus_consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = "Strong"
    # Seconds one Milvus call may take before it answers 503 milvus_unavailable.
    milvus_timeout_s: float = Field(10.0, gt=0)
    # Shards (parallel write channels) of each Milvus collection created; fixed at creation.
    milvus_shards: int = Field(1, ge=1, le=64)

    @field_validator("hnsw_rebuild_growth")
    @classmethod
    def _growth(cls, value: float) -> float:
        if 0 < value <= 1:
            raise ValueError("hnsw_rebuild_growth must be 0 (never) or above 1")
        return value
