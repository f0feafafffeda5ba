"""Idempotency records name the person of their stored response, so erasing the person deletes
them (the stored response holds the person's name and metadata).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("person_id", sa.String(128), nullable=True))
    op.create_index("ix_idempotency_keys_person", "idempotency_keys", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_person", "idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("person_id")
