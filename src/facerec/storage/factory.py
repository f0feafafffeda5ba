"""Build the vector searcher the options ask for, over a repository's engine."""

from __future__ import annotations

from facerec.errors import ServiceUnavailableError
from facerec.storage.change_feed import PersonsChanged
from facerec.storage.pgvector import repository_has_pgvector
from facerec.storage.pgvector_search import PgVectorSearcher
from facerec.storage.protocols import FaceSearcher
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository


async def create_searcher(
    repository: SqlGalleryRepository,
    options: IndexOptions | None = None,
    *,
    on_persons_changed: PersonsChanged | None = None,
) -> FaceSearcher:
    """``memory``: exact → HNSW in this process, synced by the change log.
    ``pgvector``: HNSW inside PostgreSQL (the change log followed only to report changes); fails
    when the extension is not there.
    ``milvus``: a Milvus server, cluster or milvus-lite file, synced by the change log (nothing
    is contacted here: :meth:`~facerec.storage.milvus.MilvusSearcher.warm` connects).
    ``auto``: pgvector when the extension is there, memory otherwise."""
    options = options or IndexOptions()
    if options.backend == "milvus":
        # Imported here: pymilvus is an optional extra (pip install 'facerec[milvus]').
        from facerec.storage.milvus import MilvusSearcher, sql_gallery_sizes
        from facerec.storage.milvus_client import MilvusGateway

        gateway = MilvusGateway(options.milvus, default_dir=options.index_dir)
        return MilvusSearcher(
            repository,
            gateway,
            sql_gallery_sizes(repository.engine),
            options,
            on_persons_changed=on_persons_changed,
        )
    available = await repository_has_pgvector(repository)
    if options.backend == "pgvector" or (options.backend == "auto" and available):
        if not available:
            raise ServiceUnavailableError(
                "index backend pgvector needs PostgreSQL with the vector extension",
                code="pgvector_unavailable",
            )
        return PgVectorSearcher(
            repository.engine,
            ef_search=options.pgvector_ef_search,
            source=repository,
            on_persons_changed=on_persons_changed,
        )
    if options.backend not in ("memory", "auto"):
        raise ValueError(
            f"unknown index backend {options.backend!r}: memory, pgvector, milvus or auto"
        )
    return IndexRegistry(repository, options, on_persons_changed=on_persons_changed)
