"""API keys and the audit log in the gallery database (tables ``api_keys`` and ``audit_log``,
revision 0004), on SQLAlchemy Core: one implementation for SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from facerec.auth.keys import KeyRecord
from facerec.errors import ConflictError
from facerec.storage.schema import api_keys, audit_log
from facerec.storage.sql_support import AnyRow, read_connection, write_transaction

# PostgreSQL advisory lock of auth writes: they never wait for gallery writes (and the reverse).
AUTH_LOCK_KEY = 7_301_652_004
MAX_AUDIT_PAGE = 1000


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: datetime
    tenant: str
    key_id: str | None
    action: str
    target: str | None
    details: dict[str, Any]

    def public(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "tenant": self.tenant,
            "key_id": self.key_id,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }


@dataclass(frozen=True)
class AuditQuery:
    tenant: str | None = None
    action: str | None = None
    since: datetime | None = None
    before_seq: int | None = None  # pages go from newest to oldest
    limit: int = 100


class SqlAuthStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # ---- keys --------------------------------------------------------------------------------

    async def add_key(self, record: KeyRecord) -> None:
        values = {
            "key_id": record.key_id,
            "tenant": record.tenant,
            "name": record.name,
            "secret_hash": record.secret_hash,
            "scopes": sorted(record.scopes),
            "collections": None if record.collections is None else sorted(record.collections),
            "created_by": record.created_by,
            "created_at": record.created_at,
            "expires_at": record.expires_at,
            "revoked_at": record.revoked_at,
        }
        try:
            async with write_transaction(self._engine, lock_key=AUTH_LOCK_KEY) as conn:
                await conn.execute(insert(api_keys).values(values))
        except IntegrityError as exc:  # 48 random bits: practically never
            raise ConflictError("key id already exists", code="key_id_taken") from exc

    async def get_key(self, key_id: str) -> KeyRecord | None:
        async with read_connection(self._engine) as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        return None if row is None else _to_key(row)

    async def list_keys(self, tenant: str | None = None) -> list[KeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        async with read_connection(self._engine) as conn:
            rows = (await conn.execute(query)).all()
        return [_to_key(row) for row in rows]

    async def revoke_key(self, key_id: str, at: datetime) -> KeyRecord | None:
        """Revoke (idempotent: a key revoked before keeps its time); None when unknown."""
        async with write_transaction(self._engine, lock_key=AUTH_LOCK_KEY) as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        return None if row is None else _to_key(row)

    # ---- audit log ---------------------------------------------------------------------------

    async def append_audit(
        self,
        *,
        at: datetime,
        tenant: str,
        key_id: str | None,
        action: str,
        target: str | None,
        details: dict[str, Any],
    ) -> None:
        values = {
            "at": at,
            "tenant": tenant,
            "key_id": key_id,
            "action": action,
            "target": target,
            "details": details,
        }
        async with write_transaction(self._engine, lock_key=AUTH_LOCK_KEY) as conn:
            await conn.execute(insert(audit_log).values(values))

    async def query_audit(self, query: AuditQuery) -> list[AuditEvent]:
        statement = (
            select(audit_log)
            .order_by(audit_log.c.seq.desc())
            .limit(max(1, min(query.limit, MAX_AUDIT_PAGE)))
        )
        if query.tenant is not None:
            statement = statement.where(audit_log.c.tenant == query.tenant)
        if query.action is not None:
            statement = statement.where(audit_log.c.action == query.action)
        if query.since is not None:
            statement = statement.where(audit_log.c.at >= query.since)
        if query.before_seq is not None:
            statement = statement.where(audit_log.c.seq < query.before_seq)
        async with read_connection(self._engine) as conn:
            rows = (await conn.execute(statement)).all()
        return [_to_event(row) for row in rows]


def _to_key(row: AnyRow) -> KeyRecord:
    m = row._mapping
    collections = m["collections"]
    return KeyRecord(
        key_id=m["key_id"],
        tenant=m["tenant"],
        name=m["name"],
        scopes=frozenset(m["scopes"] or ()),
        collections=None if collections is None else frozenset(collections),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        created_by=m["created_by"],
        secret_hash=m["secret_hash"],
    )


def _to_event(row: AnyRow) -> AuditEvent:
    m = row._mapping
    return AuditEvent(
        seq=int(m["seq"]),
        at=m["at"],
        tenant=m["tenant"],
        key_id=m["key_id"],
        action=m["action"],
        target=m["target"],
        details=dict(m["details"] or {}),
    )
