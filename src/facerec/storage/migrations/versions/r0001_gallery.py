"""Gallery tables (collections, persons, embedding spaces, faces, change log), default collection.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    collections = op.create_table(
        "collections",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "persons",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "collection",
            sa.String(64),
            sa.ForeignKey("collections.name", name="fk_persons_collection"),
            nullable=False,
        ),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("employee_id", sa.String(128), nullable=True),
        sa.Column("department", sa.String(256), nullable=True),
        sa.Column("position", sa.String(256), nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("employee_id", name="uq_persons_employee_id"),
    )
    op.create_index("ix_persons_created", "persons", ["created_at", "id"])
    op.create_index("ix_persons_collection_created", "persons", ["collection", "created_at", "id"])
    op.create_table(
        "embedding_spaces",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "faces",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "person_id",
            sa.String(64),
            sa.ForeignKey("persons.id", name="fk_faces_person", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column(
            "space",
            sa.String(128),
            sa.ForeignKey("embedding_spaces.name", name="fk_faces_space"),
            nullable=False,
        ),
        sa.Column("embedding", sa.LargeBinary, nullable=False),
        sa.Column("quality", sa.Float, nullable=False),
        sa.Column("bbox", _JSON, nullable=True),
        sa.Column("image_sha256", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_faces_person", "faces", ["person_id"])
    op.create_index("ix_faces_collection_space", "faces", ["collection", "space"])
    op.create_index("ix_faces_image_sha256", "faces", ["image_sha256"])
    op.create_table(
        "change_log",
        sa.Column("seq", _SEQ, primary_key=True, autoincrement=True),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=True),
        sa.Column("face_id", sa.String(64), nullable=True),
        sa.Column("collection", sa.String(64), nullable=True),
        sa.Column("space", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )
    state = op.create_table(
        "gallery_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        collections,
        [{"name": "default", "description": "Default collection", "created_at": now}],
    )
    op.bulk_insert(
        state,
        [
            {"key": "pruned_through", "value": 0},
            # Tells this database's index snapshots from another's in a shared index_dir.
            {"key": "instance_id", "value": secrets.randbits(62)},
        ],
    )


def downgrade() -> None:
    for table in ("gallery_state", "change_log", "faces", "embedding_spaces", "persons"):
        op.drop_table(table)
    op.drop_table("collections")
