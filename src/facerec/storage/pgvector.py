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
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from facerec.storage.models import EmbeddingSpace
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
