"""Kept face chips, each collection's active embedding space, gallery migrations.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
MIRROR_SUFFIX = "+mirror"


def upgrade() -> None:
    op.create_table(
        "face_chips",
        sa.Column(
            "face_id",
            sa.String(64),
            sa.ForeignKey("faces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("origin_id", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("landmarks", _JSON, nullable=False),
        sa.Column("chip", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_face_chips_origin_id", "face_chips", ["origin_id"])
    op.create_index("ix_face_chips_collection", "face_chips", ["collection"])
    spaces = op.create_table(
        "collection_spaces",
        sa.Column("collection", sa.String(128), primary_key=True),
        sa.Column("embedder", sa.String(64), nullable=False),
        sa.Column("space", sa.String(128), nullable=False),
        sa.Column("previous_embedder", sa.String(64), nullable=True),
        sa.Column("previous_space", sa.String(128), nullable=True),
        sa.Column("migration_id", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "gallery_migrations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("from_embedder", sa.String(64), nullable=False),
        sa.Column("from_space", sa.String(128), nullable=False),
        sa.Column("to_embedder", sa.String(64), nullable=False),
        sa.Column("to_space", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("without_chip", sa.Integer, nullable=False),
        sa.Column("batches", sa.Integer, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("report", _JSON, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_gallery_migrations_collection", "gallery_migrations", ["collection"])
    # Existing collections answer from the space they hold the most faces of (what ``auto``
    # chose before), so nothing changes for them.
    rows = op.get_bind().execute(
        sa.text("SELECT collection, space, COUNT(*) FROM faces GROUP BY collection, space")
    )
    held: dict[str, dict[str, int]] = {}
    for collection, space, count in rows:
        base = space[: -len(MIRROR_SUFFIX)] if space.endswith(MIRROR_SUFFIX) else space
        per_space = held.setdefault(collection, {})
        per_space[base] = per_space.get(base, 0) + int(count)
    best = {c: max(per.items(), key=lambda item: item[1])[0] for c, per in held.items()}
    now = datetime.now(UTC).replace(tzinfo=None)
    if best:
        op.bulk_insert(
            spaces,
            [
                {
                    "collection": collection,
                    "embedder": space.split("@", 1)[0],
                    "space": space,
                    "updated_at": now,
                }
                for collection, space in best.items()
            ],
        )


def downgrade() -> None:
    op.drop_table("gallery_migrations")
    op.drop_table("collection_spaces")
    op.drop_table("face_chips")
