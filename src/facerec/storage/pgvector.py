"""pgvector support (PostgreSQL only, and only where the ``vector`` extension can be created).

Embeddings always live in ``faces.embedding`` (float32 bytes). Where pgvector exists they are also
copied into ``face_vectors`` in the same transaction, with one partial HNSW index per
(collection, space): dimensions differ between spaces, so the index is on
``embedding::vector(dim)`` and queries use the same expression.

``face_vectors`` holds plaintext vectors (search needs them), even when ``faces.embedding`` is
encrypted at rest (:mod:`facerec.storage.sealing`); with encryption on, prefer the in-process
index (``FACEREC_INDEX__BACKEND=memory``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.storage.models import EmbeddingSpace, SearchHit, as_vector
from facerec.storage.protocols import GallerySize
from facerec.storage.sealing import EMBEDDING_COLUMN, Sealer, is_sealed, open_blob
from facerec.values import Metric

log = logging.getLogger(__name__)

TABLE = "face_vectors"
_OPS: dict[Metric, tuple[str, str]] = {
    "l2": ("vector_l2_ops", "<->"),
    "cosine": ("vector_cosine_ops", "<=>"),
}


def vector_literal(vector: NDArray[np.float32]) -> str:
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def index_name(collection: str, space: str) -> str:
    digest = hashlib.sha1(f"{collection}\0{space}".encode()).hexdigest()[:24]
    return f"{TABLE}_hnsw_{digest}"


def _index_ddl(collection: str, space: EmbeddingSpace) -> str:
    ops, _ = _OPS[space.metric]
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(collection, space.name)} ON {TABLE} "
        f"USING hnsw ((embedding::vector({int(space.dim)})) {ops}) "
        f"WHERE collection = {_quote(collection)} AND space = {_quote(space.name)}"
    )


def ensure_pgvector(conn: Connection, sealer: Sealer | None = None) -> bool:
    """Create the extension and ``face_vectors`` (backfilled) if possible; True when present.

    Embeddings encrypted at rest are opened with ``sealer`` for the backfill; without one, the
    table is not created (vectors that cannot be read are never copied as garbage, and searches
    stay with the in-process index, which reads them through the repository's sealer)."""
    if conn.dialect.name != "postgresql":
        return False
    if conn.execute(text(f"SELECT to_regclass('{TABLE}') IS NOT NULL")).scalar_one():
        return True
    rows = conn.execute(text("SELECT id, person_id, collection, space, embedding FROM faces")).all()
    if sealer is None and any(is_sealed(r[4]) for r in rows):
        log.warning(
            "faces are encrypted at rest: pgvector table %s not created, using in-process indexes",
            TABLE,
        )
        return False
    try:
        with conn.begin_nested():  # a failed CREATE EXTENSION must not abort the migration
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except DBAPIError as exc:
        log.info("pgvector is not available, using in-process vector indexes: %s", exc.orig)
        return False
    conn.exec_driver_sql(
        f"CREATE TABLE {TABLE} ("
        " face_id VARCHAR(64) PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,"
        " person_id VARCHAR(128) NOT NULL,"
        " collection VARCHAR(128) NOT NULL,"
        " space VARCHAR(128) NOT NULL,"
        " embedding vector NOT NULL)"
    )
    if rows:
        conn.execute(
            text(
                f"INSERT INTO {TABLE} (face_id, person_id, collection, space, embedding)"
                " VALUES (:f, :p, :c, :s, CAST(CAST(:v AS text) AS vector))"
            ),
            [
                {
                    "f": r[0],
                    "p": r[1],
                    "c": r[2],
                    "s": r[3],
                    "v": _bytes_literal(sealer, r[0], r[4]),
                }
                for r in rows
            ],
        )
    spaces = {
        r[0]: EmbeddingSpace(r[0], int(r[1]), r[2])
        for r in conn.execute(text("SELECT name, dim, metric FROM embedding_spaces"))
    }
    for collection, space in {(r[2], r[3]) for r in rows}:
        conn.exec_driver_sql(_index_ddl(collection, spaces[space]))
    log.info("pgvector table %s created with %d vectors", TABLE, len(rows))
    return True


def drop_pgvector(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {TABLE}")


def _bytes_literal(sealer: Sealer | None, face_id: str, stored: bytes) -> str:
    blob = open_blob(sealer, stored, column=EMBEDDING_COLUMN, row_id=face_id)
    return vector_literal(np.frombuffer(blob, dtype="<f4"))


async def has_pgvector(conn: AsyncConnection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    result = await conn.execute(text(f"SELECT to_regclass('{TABLE}') IS NOT NULL"))
    return bool(result.scalar_one())


async def repository_has_pgvector(target: AsyncEngine | Any) -> bool:
    """Whether ``face_vectors`` exists behind an engine or anything with an ``engine`` attribute."""
    engine: AsyncEngine = target if isinstance(target, AsyncEngine) else target.engine
    if engine.dialect.name != "postgresql":
        return False
    async with engine.connect() as conn:
        return await has_pgvector(conn)


async def insert_vectors(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Rows with face_id, person_id, collection, space, vector (float32 array)."""
    if not rows:
        return
    await conn.execute(
        text(
            f"INSERT INTO {TABLE} (face_id, person_id, collection, space, embedding)"
            " VALUES (:f, :p, :c, :s, CAST(CAST(:v AS text) AS vector))"
        ),
        [
            {
                "f": r["face_id"],
                "p": r["person_id"],
                "c": r["collection"],
                "s": r["space"],
                "v": vector_literal(r["vector"]),
            }
            for r in rows
        ],
    )


async def ensure_index(conn: AsyncConnection, collection: str, space: EmbeddingSpace) -> None:
    """Create the partial HNSW index of (collection, space) unless it exists.

    Callers hold the change-log advisory lock, so two writers never race on the same name.
    """
    exists = await conn.execute(
        text("SELECT to_regclass(:n) IS NOT NULL"), {"n": index_name(collection, space.name)}
    )
    if not exists.scalar_one():
        await conn.exec_driver_sql(_index_ddl(collection, space))


def search_sql(space: EmbeddingSpace) -> str:
    """Nearest faces of one (collection, space); parameters :q (vector text), :c, :s, :k."""
    _, op = _OPS[space.metric]
    dim = int(space.dim)
    expr = f"(embedding::vector({dim})) {op} CAST(CAST(:q AS text) AS vector({dim}))"
    return (
        f"SELECT face_id, person_id, {expr} AS distance FROM {TABLE}"
        f" WHERE collection = :c AND space = :s ORDER BY {expr} LIMIT :k"
    )


async def drop_index(conn: AsyncConnection, collection: str, space: str) -> None:
    await conn.exec_driver_sql(f"DROP INDEX IF EXISTS {index_name(collection, space)}")


class PgVectorSearcher:
    """:class:`~facerec.storage.protocols.FaceSearcher` answered by pgvector's HNSW in PostgreSQL.

    Always consistent with the database (no in-process state), at the cost of a round trip.
    """

    backend = "pgvector"  # what /ready and the models page report
    # No change log is read: persons' faces are read from the database at each recognize.
    applies_change_log = False

    def __init__(
        self, engine: AsyncEngine, *, ef_search: int = 100, size_ttl_s: float = 2.0
    ) -> None:
        self._engine = engine
        self._ef_search = ef_search
        self._spaces: dict[str, EmbeddingSpace] = {}
        self._size_ttl_s = size_ttl_s
        self._sizes: dict[tuple[str, str], tuple[float, GallerySize]] = {}

    async def _space(self, conn: AsyncConnection, name: str) -> EmbeddingSpace | None:
        space = self._spaces.get(name)
        if space is None:
            row = (
                await conn.execute(
                    text("SELECT name, dim, metric FROM embedding_spaces WHERE name = :n"),
                    {"n": name},
                )
            ).first()
            if row is None:
                return None
            space = self._spaces[name] = EmbeddingSpace(row[0], int(row[1]), row[2])
        return space

    async def sync(self) -> int:
        return 0  # always current: the index lives in the database

    async def close(self) -> None:
        return None

    async def warm(self) -> int:
        return 0  # PostgreSQL keeps its HNSW indexes

    async def gallery_size(self, collection: str, space: str) -> GallerySize:
        """Counted in SQL, remembered for ``size_ttl_s`` per (collection, space)."""
        now = time.monotonic()
        cached = self._sizes.get((collection, space))
        if cached is not None and now - cached[0] < self._size_ttl_s:
            return cached[1]
        sql = text(
            f"SELECT count(DISTINCT person_id), count(*) FROM {TABLE}"
            " WHERE collection = :c AND space = :s"
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(sql, {"c": collection, "s": space})).one()
        size = GallerySize(int(row[0]), int(row[1]))
        if len(self._sizes) > 10_000:
            self._sizes.clear()
        self._sizes[(collection, space)] = (now, size)
        return size

    async def count(self, collection: str, space: str) -> int:
        async with self._engine.connect() as conn:
            sql = text(f"SELECT count(*) FROM {TABLE} WHERE collection = :c AND space = :s")
            return int((await conn.execute(sql, {"c": collection, "s": space})).scalar_one())

    async def search(
        self, collection: str, space: str, query: NDArray[np.float32], k: int = 1
    ) -> list[SearchHit]:
        async with self._engine.begin() as conn:
            spec = await self._space(conn, space)
            if spec is None or k <= 0:
                return []
            vector = as_vector(query, spec.dim)
            fetch = max(4 * k, 16)
            ef = max(self._ef_search, fetch)
            # Custom plans let the planner match the partial index predicate to the parameters.
            await conn.execute(
                text(
                    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
                    " set_config('hnsw.ef_search', :ef, true)"
                ),
                {"ef": str(ef)},
            )
            sql = text(search_sql(spec))
            while True:
                params = {"q": vector_literal(vector), "c": collection, "s": space, "k": fetch}
                rows = (await conn.execute(sql, params)).all()
                hits = best_per_person((r[1], r[0], float(r[2])) for r in rows)
                if len(hits) >= k or len(rows) < fetch or fetch >= 1000:
                    return hits[:k]
                fetch *= 4
                if fetch > ef:
                    ef = min(fetch, 1000)
                    await conn.execute(
                        text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef)}
                    )

    async def search_many(
        self, collection: str, space: str, queries: Sequence[NDArray[np.float32]], k: int = 1
    ) -> list[list[SearchHit]]:
        # Each search is one query inside PostgreSQL: there is no local index to catch up.
        return [await self.search(collection, space, query, k) for query in queries]


def best_per_person(rows: Iterable[tuple[str, str, float]]) -> list[SearchHit]:
    """(person_id, face_id, distance) rows sorted by distance → first hit of each person."""
    seen: set[str] = set()
    hits: list[SearchHit] = []
    for person_id, face_id, distance in rows:
        if person_id not in seen:
            seen.add(person_id)
            hits.append(SearchHit(person_id, face_id, distance))
    return hits
