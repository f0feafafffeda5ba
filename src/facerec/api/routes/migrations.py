"""Migrations of a collection to another embedding model (scope ``admin``, the caller's tenant):
start one (it runs in the background), follow its progress and report, cut over, roll back,
finish (see :mod:`facerec.domain.migration`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from facerec.api.auth import PrincipalDep
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.schemas.common import ACCESS_ERRORS, GALLERY_RESPONSES
from facerec.domain.migration import GalleryMigrations
from facerec.domain.tenancy import TenantScope
from facerec.state import AppState
from facerec.storage.gallery_migration_records import MigrationRecord, migration_not_found

router = APIRouter(prefix="/api/admin/migrations", tags=["Admin"], responses=GALLERY_RESPONSES)


class MigrationRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"collection": "staff", "to_model": "mobilefacenet"}]}
    )

    collection: str = Field("default", description="the collection to re-embed")
    to_model: str = Field(description="an installed embedder: mobilefacenet, w600k_mbf, ...")


class MigrationOut(BaseModel):
    migration_id: str
    collection: str
    status: str = Field(description="running, complete, cut_over, rolled_back, finished or failed")
    from_model: str
    from_space: str
    to_model: str
    to_space: str
    active_space: str | None = Field(description="the space the collection answers from now")
    faces_total: int = Field(description="faces with a kept chip to re-embed")
    faces_done: int
    progress: float = Field(description="faces_done / faces_total, 0-1")
    faces_without_chip: int = Field(description="faces that need a new photo to migrate")
    batches: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    report: dict[str, Any] | None = Field(
        None, description="the two spaces compared on the collection's faces (once complete)"
    )


class MigrationResponse(BaseModel):
    success: bool = True
    migration: MigrationOut


class MigrationListResponse(BaseModel):
    success: bool = True
    migrations: list[MigrationOut]


def _service(state: AppState) -> GalleryMigrations:
    if state.migrations is None:  # pragma: no cover - set before readiness
        raise RuntimeError("migrations not initialised")
    return state.migrations


def _report(report: dict[str, Any] | None, scope: TenantScope) -> dict[str, Any] | None:
    """The report with person ids as the caller knows them (stored keys carry the tenant)."""
    if report is None:
        return None
    out = dict(report)
    top1 = out.get("top1")
    if isinstance(top1, dict):
        out["top1"] = dict(top1) | {
            "changed": [
                {
                    k: scope.person_id(v) if k != "face_id" and isinstance(v, str) else v
                    for k, v in item.items()
                }
                for item in top1.get("changed", [])
            ]
        }
    needs = out.get("needs_new_photo")
    if isinstance(needs, dict):
        out["needs_new_photo"] = dict(needs) | {
            "faces": [
                {"person_id": scope.person_id(f["person_id"]), "face_id": f["face_id"]}
                for f in needs.get("faces", [])
            ]
        }
    return out


async def _out(
    state: AppState, record: MigrationRecord, scope: TenantScope, *, report: bool = True
) -> MigrationOut:
    active = await _service(state).store.active(record.collection)
    total = max(record.total, record.done)
    return MigrationOut(
        migration_id=record.id,
        collection=scope.collection_name(record.collection),
        status=record.status,
        from_model=record.from_embedder,
        from_space=record.from_space,
        to_model=record.to_embedder,
        to_space=record.to_space,
        active_space=active.space if active is not None else None,
        faces_total=total,
        faces_done=record.done,
        progress=round(record.done / total, 4) if total else 1.0,
        faces_without_chip=record.without_chip,
        batches=record.batches,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        report=_report(record.report, scope) if report else None,
    )


async def _owned(state: AppState, migration_id: str, scope: TenantScope) -> MigrationRecord:
    """The migration when it belongs to the caller's tenant; 404 exactly like an unknown id."""
    if len(migration_id) > 64:
        raise migration_not_found(migration_id[:64])
    record = await _service(state).get(migration_id)
    if not scope.owns_collection(record.collection):
        raise migration_not_found(migration_id)
    return record


@router.post(
    "",
    response_model=MigrationResponse,
    status_code=202,
    summary="Start a migration",
    description="Starts re-embedding every kept face chip of `collection` into `to_model`'s space "
    "in the background (202); searches keep using the old space until cut-over. Scope "
    "`admin`. Errors: 400 `model_not_installed`, `unknown_model`; 404 "
    "`collection_not_found`; 409 `migration_running`, `already_in_space`, "
    "`nothing_to_migrate`.",
)
async def start_migration(
    body: MigrationRequest, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> MigrationResponse:
    service = _service(state)
    record = await service.start(scope.collection_key(body.collection), body.to_model)
    service.launch(record.id)
    await state.audit.record(
        principal, "migration.start", record.id, collection=body.collection, to=record.to_space
    )
    return MigrationResponse(migration=await _out(state, record, scope))


@router.get(
    "",
    response_model=MigrationListResponse,
    summary="Migrations of your collections",
    description="Your tenant's migrations, optionally for one `collection`. Scope `admin`. Errors: "
    + ACCESS_ERRORS
    + ".",
)
async def list_migrations(
    state: StateDep,
    scope: ScopeDep,
    collection: Annotated[str | None, Query(max_length=64)] = None,
) -> MigrationListResponse:
    service = _service(state)
    keys = [scope.collection_key(collection)] if collection is not None else None
    records = [
        r
        for r in await service.store.migrations(collections=keys)
        if scope.owns_collection(r.collection)
    ]
    return MigrationListResponse(
        migrations=[await _out(state, r, scope, report=False) for r in records]
    )


@router.get(
    "/{migration_id}",
    response_model=MigrationResponse,
    summary="Progress and report",
    description="Status (`running`, `complete`, `cut_over`, `rolled_back`, `finished`, `failed`), "
    "progress, faces without a chip and, once complete, the report comparing both "
    "spaces on the collection's faces. Scope `admin`. Errors: 404 "
    "`migration_not_found`.",
)
async def get_migration(migration_id: str, state: StateDep, scope: ScopeDep) -> MigrationResponse:
    record = await _owned(state, migration_id, scope)
    return MigrationResponse(migration=await _out(state, record, scope))


@router.post(
    "/{migration_id}/cut-over",
    response_model=MigrationResponse,
    summary="Answer from the new space (409 until complete)",
    description="Makes the new space the collection's active space, atomically. Scope `admin`. "
    "Errors: 404 `migration_not_found`; 409 `migration_not_complete`, "
    "`migration_wrong_status`.",
)
async def cut_over(
    migration_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> MigrationResponse:
    await _owned(state, migration_id, scope)
    record = await _service(state).cut_over(migration_id)
    await state.audit.record(principal, "migration.cut_over", migration_id)
    return MigrationResponse(migration=await _out(state, record, scope))


@router.post(
    "/{migration_id}/rollback",
    response_model=MigrationResponse,
    summary="Answer from the old space again (after a cut-over, before finish)",
    description="Returns the collection to the old space (its vectors are kept until finish). "
    "Scope `admin`. Errors: 404 `migration_not_found`; 409 `migration_wrong_status`.",
)
async def rollback(
    migration_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> MigrationResponse:
    await _owned(state, migration_id, scope)
    record = await _service(state).rollback(migration_id)
    await state.audit.record(principal, "migration.rollback", migration_id)
    return MigrationResponse(migration=await _out(state, record, scope))


@router.post(
    "/{migration_id}/finish",
    response_model=MigrationResponse,
    summary="Drop the old space's vectors (after a cut-over)",
    description="Deletes the old space's vectors. Faces without a chip exist only there, so this "
    "needs `force=true` when there are any (they are erased). Scope `admin`. Errors: "
    "404 `migration_not_found`; 409 `faces_need_new_photo`, `migration_not_complete`, "
    "`migration_wrong_status`.",
)
async def finish(
    migration_id: str,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    force: Annotated[
        bool,
        Query(description="also erase faces without a chip (they exist only in the old space)"),
    ] = False,
) -> MigrationResponse:
    await _owned(state, migration_id, scope)
    record = await _service(state).finish(migration_id, force=force)
    await state.audit.record(principal, "migration.finish", migration_id)
    return MigrationResponse(migration=await _out(state, record, scope))
