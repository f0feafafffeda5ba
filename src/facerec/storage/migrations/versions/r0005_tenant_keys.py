"""Tenant-qualified keys: wider id columns, employee ids unique per collection.

Collections and person ids of tenants other than ``default`` are stored as ``<tenant>~<id>``
(facerec.values.qualify), so PostgreSQL's id columns grow from 64 to 128 characters (SQLite does
not enforce lengths). ``persons.employee_id`` keeps its unique constraint but now stores
``<collection>~<employee id>`` (storage.sql_support.employee_key): the same employee id may exist
once per collection. Existing rows are rewritten in place.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WIDENED = (
    ("collections", "name", 64, 128),
    ("persons", "id", 64, 128),
    ("persons", "collection", 64, 128),
    ("persons", "employee_id", 128, 256),
    ("faces", "person_id", 64, 128),
    ("faces", "collection", 64, 128),
    ("change_log", "person_id", 64, 128),
    ("change_log", "collection", 64, 128),
)
_PGVECTOR = (("face_vectors", "person_id"), ("face_vectors", "collection"))


def _widen(forward: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column, narrow, wide in _WIDENED:
        before, after = (narrow, wide) if forward else (wide, narrow)
        op.alter_column(table, column, type_=sa.String(after), existing_type=sa.String(before))
    has_vectors = bind.execute(sa.text("SELECT to_regclass('face_vectors') IS NOT NULL")).scalar()
    if has_vectors:
        for table, column in _PGVECTOR:
            op.execute(
                f"ALTER TABLE {table} ALTER COLUMN {column} TYPE VARCHAR({128 if forward else 64})"
            )


def upgrade() -> None:
    _widen(forward=True)
    op.execute(
        "UPDATE persons SET employee_id = collection || '~' || employee_id"
        " WHERE employee_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE persons SET employee_id = substr(employee_id, length(collection) + 2)"
        " WHERE employee_id IS NOT NULL"
    )
    _widen(forward=False)
