"""API keys and the audit log (scope ``admin``; see :mod:`facerec.auth.manage` for who may manage
which tenant)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from facerec.api.auth import PrincipalDep
from facerec.api.deps import StateDep
from facerec.api.schemas.common import GALLERY_RESPONSES
from facerec.auth import manage
from facerec.auth.access import AuthServices
from facerec.auth.keys import NAME_MAX, KeyRecord, KeySpec, parse_expiry
from facerec.auth.service import utcnow
from facerec.auth.store import MAX_AUDIT_PAGE, AuditQuery
from facerec.errors import InvalidInputError
from facerec.state import AppState

router = APIRouter(prefix="/api/admin", tags=["Admin"], responses=GALLERY_RESPONSES)


class KeyCreateRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant": "acme",
                    "scopes": ["detect", "recognize", "enroll", "manage"],
                    "collections": ["staff"],
                    "expires": "90d",
                    "name": "front-door kiosk",
                }
            ]
        }
    )

    tenant: str | None = Field(None, description="default: the tenant of the calling key")
    scopes: list[str] = Field(
        min_length=1,
        examples=[["detect", "recognize"]],
        description="Any of detect, recognize, enroll, manage, admin.",
    )
    collections: list[str] | None = Field(
        None, description="collections the key may touch; null: all of its tenant's"
    )
    expires: str | None = Field(
        None, description="2027-01-01, an ISO datetime, or a duration: 30d, 12h, 90m"
    )
    name: str = Field("", max_length=NAME_MAX, description="A label for people, e.g. the device.")


class KeyOut(BaseModel):
    key_id: str
    tenant: str
    name: str
    scopes: list[str]
    collections: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str
    status: str = Field(description="active, expired or revoked")


class KeyCreatedResponse(KeyOut):
    success: bool = True
    key: str = Field(description="the full key: shown this once, never stored")


class KeyListResponse(BaseModel):
    success: bool = True
    keys: list[KeyOut]


class KeyRevokedResponse(BaseModel):
    success: bool = True
    key: KeyOut


class AuditEventOut(BaseModel):
    seq: int
    at: datetime
    tenant: str = Field(description="tenant of the key that acted")
    key_id: str | None = Field(description="the key that acted; null: no key (CLI, auth off)")
    action: str
    target: str | None
    details: dict[str, Any]


class AuditResponse(BaseModel):
    success: bool = True
    events: list[AuditEventOut]
    next_cursor: str | None = Field(description="pass as cursor for the next (older) page")


def _auth(state: AppState) -> AuthServices:
    if state.auth is None:  # pragma: no cover - set before readiness
        raise RuntimeError("auth services not initialised")
    return state.auth


def _key_out(record: KeyRecord) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "tenant": record.tenant,
        "name": record.name,
        "scopes": sorted(record.scopes),
        "collections": None if record.collections is None else sorted(record.collections),
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "created_by": record.created_by,
        "status": record.status(utcnow()),
    }


@router.post(
    "/keys",
    response_model=KeyCreatedResponse,
    status_code=201,
    summary="Create an API key",
    description="Creates a key for a tenant with scopes, optional collections and expiry; the "
    "secret (`key`) is in this answer only and stored as an HMAC. An admin key "
    "manages its own tenant; an unrestricted admin key of tenant `default` manages "
    "every tenant. Scope `admin`. Errors: 422 `invalid_scope`, `invalid_tenant`, "
    "`invalid_expiry`, `invalid_collections`; 403 `tenant_forbidden`.",
)
async def create_key(
    body: KeyCreateRequest, state: StateDep, principal: PrincipalDep
) -> KeyCreatedResponse:
    spec = KeySpec(
        tenant=body.tenant or principal.tenant,
        scopes=frozenset(body.scopes),
        collections=None if body.collections is None else frozenset(body.collections),
        expires_at=parse_expiry(body.expires, utcnow()),
        name=body.name,
    )
    text, record = await manage.create_key(_auth(state), principal, spec, via="api")
    return KeyCreatedResponse(key=text, **_key_out(record))


@router.get(
    "/keys",
    response_model=KeyListResponse,
    summary="List API keys (never secrets)",
    description="Keys of the tenants you manage, with status (`active`, `expired`, `revoked`); "
    "never the secret. Scope `admin`. Errors: 403 `tenant_forbidden`.",
)
async def list_keys(
    state: StateDep,
    principal: PrincipalDep,
    tenant: Annotated[str | None, Query(description="default: every tenant you manage")] = None,
) -> KeyListResponse:
    records = await manage.list_keys(_auth(state), principal, tenant)
    return KeyListResponse(keys=[KeyOut(**_key_out(r)) for r in records])


@router.delete(
    "/keys/{key_id}",
    response_model=KeyRevokedResponse,
    summary="Revoke an API key",
    description="Revokes a key at once in this process and within `auth.cache_seconds` elsewhere. "
    "Scope `admin`. Errors: 404 `key_not_found` (also another tenant's key); 403 "
    "`tenant_forbidden`.",
)
async def revoke_key(key_id: str, state: StateDep, principal: PrincipalDep) -> KeyRevokedResponse:
    record = await manage.revoke_key(_auth(state), principal, key_id, via="api")
    return KeyRevokedResponse(key=KeyOut(**_key_out(record)))


@router.get(
    "/audit",
    response_model=AuditResponse,
    summary="The audit log, newest first",
    description="Who (tenant, key id), when and what (action, ids) for enrollments, updates, "
    "erasures, collections and keys; never images, vectors, names or metadata. "
    "Filters `tenant`, `action`, `since`; page with `cursor`. Scope `admin`. Errors: "
    "400 `invalid_cursor`; 403 `tenant_forbidden`; 422 `validation_error`.",
)
async def audit(
    state: StateDep,
    principal: PrincipalDep,
    tenant: Annotated[str | None, Query()] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="ISO datetime (UTC when naive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> AuditResponse:
    if cursor is not None and not cursor.isdigit():
        raise InvalidInputError("cursor is not a next_cursor value", code="invalid_cursor")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=utcnow().tzinfo)
    query = AuditQuery(
        tenant=manage.visible_tenant(principal, tenant),
        action=action,
        since=since,
        before_seq=int(cursor) if cursor is not None else None,
        limit=limit,
    )
    events = await _auth(state).audit.query(query)
    next_cursor = str(events[-1].seq) if len(events) == limit else None
    return AuditResponse(
        events=[AuditEventOut(**e.public()) for e in events], next_cursor=next_cursor
    )
