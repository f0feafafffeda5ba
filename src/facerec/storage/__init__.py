"""Gallery storage: persons, faces and collections in SQLite or PostgreSQL, and vector search.

Lifespan wiring::

    engine = create_engine(settings.db)
    await upgrade_database(settings, engine=engine)
    repository = SqlGalleryRepository(engine)
    searcher = await create_searcher(repository, IndexOptions.from_settings(settings))
    await searcher.sync()  # records the change-log position
    ...
    await searcher.close()  # IndexRegistry: syncs, then saves HNSW snapshots
    await repository.close()  # releases the change-log probe connection
    await engine.dispose()
"""

from facerec.storage.engine import create_engine, session_factory
from facerec.storage.factory import create_searcher
from facerec.storage.migrate import database_revision, upgrade_database
from facerec.storage.models import (
    DEFAULT_COLLECTION,
    UNSET,
    EmbeddingSpace,
    NewFace,
    NewPerson,
    PersonPage,
    PersonPatch,
    Registration,
    SearchHit,
)
from facerec.storage.pgvector_search import PgVectorSearcher
from facerec.storage.protocols import FaceSearcher, GalleryRepository, IndexSource, VectorIndex
from facerec.storage.registry import IndexOptions, IndexRegistry
from facerec.storage.sql_repository import SqlGalleryRepository
from facerec.storage.vector_index import ExactIndex, HnswIndex
from facerec.values import Collection, Erasure, Face, Person

__all__ = [
    "DEFAULT_COLLECTION",
    "UNSET",
    "Collection",
    "EmbeddingSpace",
    "Erasure",
    "ExactIndex",
    "Face",
    "FaceSearcher",
    "GalleryRepository",
    "HnswIndex",
    "IndexOptions",
    "IndexRegistry",
    "IndexSource",
    "NewFace",
    "NewPerson",
    "Person",
    "PersonPage",
    "PersonPatch",
    "PgVectorSearcher",
    "Registration",
    "SearchHit",
    "SqlGalleryRepository",
    "VectorIndex",
    "create_engine",
    "create_searcher",
    "database_revision",
    "session_factory",
    "upgrade_database",
]
