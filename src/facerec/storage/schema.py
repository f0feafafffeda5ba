"""SQLAlchemy Core tables used by the repository queries.

The migrations in ``storage/migrations/versions`` create these tables; keep both in step (the
contract tests run every query against a migrated database on SQLite and PostgreSQL). The photo
tables are in :mod:`facerec.storage.photo_schema`, on this module's ``metadata``.
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
# Collections and person ids are stored tenant-qualified (values.qualify: ``<tenant>~<id>``, a
# 32-character tenant at most), employee ids collection-qualified (revision 0005 widened them).
KEY_LEN = 128
EMPLOYEE_KEY_LEN = 256


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
    Column("name", String(KEY_LEN), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

persons = Table(
    "persons",
    metadata,
    Column("id", String(KEY_LEN), primary_key=True),
    Column("collection", String(KEY_LEN), ForeignKey("collections.name"), nullable=False),
    Column("name", String(256), nullable=False),
    # ``<collection key>~<employee id>``: unique per collection (sql_support.employee_key).
    Column("employee_id", String(EMPLOYEE_KEY_LEN), nullable=True, unique=True),
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
        "person_id", String(KEY_LEN), ForeignKey("persons.id", ondelete="CASCADE"), nullable=False
    ),
    # Denormalised from the person (a person never changes collection): index builds read one
    # (collection, space) slice without a join.
    Column("collection", String(KEY_LEN), nullable=False),
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
    Column("person_id", String(KEY_LEN), nullable=True),
    Column("face_id", String(ID_LEN), nullable=True),
    Column("collection", String(KEY_LEN), nullable=True),
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

# Idempotency-Key records (revision 0003): the first successful response of an enrollment request,
# replayed to a retry with the same key. ``status`` NULL: the first request is still running (it
# holds the key until ``locked_until``).
IDEMPOTENCY_KEY_LEN = 255
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(IDEMPOTENCY_KEY_LEN), primary_key=True),
    Column("route", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("locked_until", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # The person the stored response names (revision 0006): erasing the person deletes it.
    Column("person_id", String(KEY_LEN), nullable=True),
)

# API keys and the audit log (revision 0004, facerec.auth). A key's secret is never stored: only
# HMAC-SHA256(pepper, key_id "." secret). ``collections`` NULL: every collection of the tenant.
TENANT_LEN = 32
KEY_ID_LEN = 32
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(KEY_ID_LEN), primary_key=True),
    Column("tenant", String(TENANT_LEN), nullable=False),
    Column("name", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Json, nullable=False),
    Column("collections", Json, nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)

# Who (tenant + key id; NULL: no key, e.g. the command line) did what (action + target id) when.
# Never images, vectors, names or metadata.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", SeqInt, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("tenant", String(TENANT_LEN), nullable=False),
    Column("key_id", String(KEY_ID_LEN), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=True),
    Column("details", Json, nullable=False),
    sqlite_autoincrement=True,
)

# Kept face chips (revision 0008, facerec.domain.migration): the aligned chip an embedder saw (PNG
# bytes, sealed like faces.embedding as column ``face_chips.chip``) and its five landmarks in chip
# pixels, so the face can be re-embedded by another model. ``origin_id``: the enrolled face the
# chip was first kept for; a face re-embedded into another space shares it, so erasing one face
# erases its copies in every space.
face_chips = Table(
    "face_chips",
    metadata,
    Column("face_id", String(ID_LEN), ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
    Column("origin_id", String(ID_LEN), nullable=False, index=True),
    Column("collection", String(KEY_LEN), nullable=False, index=True),
    Column("format", String(8), nullable=False),
    Column("landmarks", Json, nullable=False),
    Column("chip", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# The embedding space each collection answers from (revision 0008): set at its first enrollment,
# switched by a migration's cut-over (``previous_*``: what a rollback returns to).
# ``migration_id``: the collection's open migration (one at a time; claimed by a conditional
# update).
collection_spaces = Table(
    "collection_spaces",
    metadata,
    Column("collection", String(KEY_LEN), primary_key=True),
    Column("embedder", String(64), nullable=False),
    Column("space", String(SPACE_LEN), nullable=False),
    Column("previous_embedder", String(64), nullable=True),
    Column("previous_space", String(SPACE_LEN), nullable=True),
    Column("migration_id", String(ID_LEN), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Migrations of a collection to another embedding space and their persisted progress (the
# re-embedded faces themselves are the progress: a restart continues with the faces that have no
# copy in the new space yet). ``lease_*``: the process working on it, renewed every batch.
gallery_migrations = Table(
    "gallery_migrations",
    metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("collection", String(KEY_LEN), nullable=False, index=True),
    Column("from_embedder", String(64), nullable=False),
    Column("from_space", String(SPACE_LEN), nullable=False),
    Column("to_embedder", String(64), nullable=False),
    Column("to_space", String(SPACE_LEN), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("done", Integer, nullable=False),
    Column("without_chip", Integer, nullable=False),
    Column("batches", Integer, nullable=False),
    Column("batch_size", Integer, nullable=False),
    Column("error", Text, nullable=True),
    Column("report", Json, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
