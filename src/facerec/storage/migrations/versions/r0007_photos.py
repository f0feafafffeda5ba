"""Stored photos, their tagged faces, candidates and rejections (facerec.domain.photos).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "photos",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("space", sa.String(128), nullable=True),
        sa.Column("embedder", sa.String(64), nullable=True),
        sa.Column("detector", sa.String(64), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=True),
        sa.Column("options", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_photos_collection", "photos", ["collection"])
    op.create_table(
        "photo_faces",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "photo_id",
            sa.String(128),
            sa.ForeignKey("photos.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("face_index", sa.Integer, nullable=False),
        sa.Column("collection", sa.String(128), nullable=False),
        sa.Column("space", sa.String(128), nullable=True),
        sa.Column("bbox", _JSON, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("quality", sa.Float, nullable=False),
        sa.Column("quality_reasons", _JSON, nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("embedding", sa.LargeBinary, nullable=True),
        sa.Column("person_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(16), nullable=False),
        sa.Column("enrolled_face_id", sa.String(64), nullable=True),
        sa.Column("cluster_id", sa.String(64), nullable=True),
        sa.Column("excluded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("photo_id", "face_index", name="uq_photo_faces_index"),
    )
    op.create_index("ix_photo_faces_person_id", "photo_faces", ["person_id"])
    op.create_index("ix_photo_faces_cluster_id", "photo_faces", ["cluster_id"])
    op.create_index("ix_photo_faces_slice", "photo_faces", ["collection", "space"])
    op.create_table(
        "photo_face_candidates",
        sa.Column(
            "face_id",
            sa.String(64),
            sa.ForeignKey("photo_faces.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "person_id",
            sa.String(128),
            sa.ForeignKey("persons.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("matched_face_id", sa.String(64), nullable=True),
        sa.Column("similarity", sa.Float, nullable=False),
        sa.Column("distance", sa.Float, nullable=False),
        sa.Column("nearest_distance", sa.Float, nullable=False),
        sa.Column("faces", sa.Integer, nullable=False),
        sa.Column("is_match", sa.Integer, nullable=False),
    )
    op.create_index("ix_photo_face_candidates_person", "photo_face_candidates", ["person_id"])
    op.create_table(
        "photo_rejections",
        sa.Column(
            "photo_id",
            sa.String(128),
            sa.ForeignKey("photos.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("face_index", sa.Integer, primary_key=True),
        sa.Column(
            "person_id",
            sa.String(128),
            sa.ForeignKey("persons.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_photo_rejections_person", "photo_rejections", ["person_id"])


def downgrade() -> None:
    op.drop_table("photo_rejections")
    op.drop_table("photo_face_candidates")
    op.drop_table("photo_faces")
    op.drop_table("photos")
