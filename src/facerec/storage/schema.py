"""SQLAlchemy Core tables used by the repository queries.

The migrations in ``storage/migrations/versions`` create these tables; keep both in step (the
contract tests run every query against a migrated database on SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

ID_LEN = 64
SPACE_LEN = 128


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on every backend, returned as an aware UTC datetime."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text, e.g. from a server default
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
SeqInt = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY = rowid

collections = Table(
    "collections",
    metadata,
    Column("name", String(ID_LEN), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

persons = Table(
    "persons",
    metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("collection", String(ID_LEN), ForeignKey("collections.name"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("employee_id", String(128), nullable=True, unique=True),
    Column("department", String(256), nullable=True),
    Column("position", String(256), nullable=True),
    Column("metadata", Json, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

embedding_spaces = Table(
    "embedding_spaces",
    metadata,
    Column("name", String(SPACE_LEN), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("metric", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

faces = Table(
    "faces",
    metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column(
        "person_id", String(ID_LEN), ForeignKey("persons.id", ondelete="CASCADE"), nullable=False
    ),
    # Denormalised from the person (a person never changes collection): index builds read one
    # (collection, space) slice without a join.
    Column("collection", String(ID_LEN), nullable=False),
    Column("space", String(SPACE_LEN), ForeignKey("embedding_spaces.name"), nullable=False),
    Column("embedding", LargeBinary, nullable=False),  # float32 little-endian bytes
    Column("quality", Float, nullable=False),
    Column("bbox", Json, nullable=True),
    Column("image_sha256", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

change_log = Table(
    "change_log",
    metadata,
    Column("seq", SeqInt, primary_key=True, autoincrement=True),
    Column("op", String(32), nullable=False),
    Column("person_id", String(ID_LEN), nullable=True),
    Column("face_id", String(ID_LEN), nullable=True),
    Column("collection", String(ID_LEN), nullable=True),
    Column("space", String(SPACE_LEN), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,  # never reuse a seq, even after pruning the newest rows
)

gallery_state = Table(
    "gallery_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
