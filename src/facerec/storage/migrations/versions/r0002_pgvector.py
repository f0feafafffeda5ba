"""pgvector side table, only where ``CREATE EXTENSION vector`` succeeds (PostgreSQL).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-01

Without the extension this revision does nothing; ``upgrade_database`` tries again on every
start, so installing pgvector later adds (and backfills) the table then.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from facerec.storage.pgvector import drop_pgvector, ensure_pgvector

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    ensure_pgvector(op.get_bind())


def downgrade() -> None:
    drop_pgvector(op.get_bind())
