"""Persons and collections (galleries). Deleting a person is erasure: every embedding, cached copy
and index entry of that person goes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from facerec.api.auth import PrincipalDep
from facerec.api.convert import collection_out, face_record_out, person_out
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.schemas.common import ACCESS_ERRORS, GALLERY_RESPONSES
from facerec.api.schemas.persons import (
    CollectionIn,
    CollectionListResponse,
    CollectionOut,
    DeletedResponse,
    PersonDetailResponse,
    PersonListResponse,
    PersonOut,
    PersonPatchRequest,
)
from facerec.storage.models import UNSET, PersonPatch

router = APIRouter(
    prefix="/api/face-recognition", tags=["Persons and collections"], responses=GALLERY_RESPONSES
)


@router.get(
    "/persons",
    response_model=PersonListResponse,
    summary="List persons (cursor pagination)",
    description="Persons of your tenant, filtered by `collection`, `name` (case-insensitive "
    "substring) and `employee_id`; pass the answer's `next_cursor` as `cursor` for "
    "the next page. Scope `manage`. Errors: 404 `collection_not_found`; 403 "
    "`collection_forbidden`; 422 `validation_error`.",
)
async def list_persons(
    state: StateDep,
    scope: ScopeDep,
    collection: Annotated[str | None, Query()] = None,
    name: Annotated[str | None, Query(description="Case-insensitive substring")] = None,
    employee_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PersonListResponse:
    page = await state.persons.list_persons(
        scope,
        collection=collection,
        name=name,
        employee_id=employee_id,
        limit=limit,
        cursor=cursor,
    )
    return PersonListResponse(
        persons=[person_out(p, scope) for p in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/persons/{person_id}",
    response_model=PersonDetailResponse,
    summary="One person",
    description="The person with its enrolled faces (id, embedding space, quality, box). Scope "
    "`manage`. Errors: 404 `person_not_found` (also for another tenant's person).",
)
async def get_person(person_id: str, state: StateDep, scope: ScopeDep) -> PersonDetailResponse:
    person, faces = await state.persons.get(scope, person_id)
    return PersonDetailResponse(
        person=person_out(person, scope), faces=[face_record_out(f) for f in faces]
    )


@router.patch(
    "/persons/{person_id}",
    response_model=PersonOut,
    summary="Rename, edit metadata",
    description="Changes the name, metadata, department or position; fields left out are "
    "unchanged. Scope `manage`. Errors: 404 `person_not_found`; 422 `invalid_name`, "
    "`invalid_value`, `invalid_metadata`; 503 `storage_unavailable`.",
)
async def patch_person(
    person_id: str,
    body: PersonPatchRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
) -> PersonOut:
    fields = body.model_fields_set
    patch = PersonPatch(
        name=body.person_name if "person_name" in fields and body.person_name else UNSET,
        metadata=body.metadata if "metadata" in fields and body.metadata is not None else UNSET,
        department=body.department if "department" in fields else UNSET,
        position=body.position if "position" in fields else UNSET,
    )
    person = await state.persons.update_person(scope, person_id, patch)
    await state.audit.record(principal, "person.update", person.id, fields=sorted(fields))
    return person_out(person, scope)


@router.delete(
    "/persons/{person_id}",
    response_model=DeletedResponse,
    summary="Erase a person",
    description="Erases the person: faces, embeddings, index entries, cached results and stored "
    "responses of their idempotent requests, in every replica. Scope `manage`. "
    "Errors: 404 `person_not_found`; 503 `storage_unavailable`.",
)
async def delete_person(
    person_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> DeletedResponse:
    erasure = await state.persons.delete_person(scope, person_id)
    await state.audit.record(
        principal, "person.erase", scope.person_key(person_id), faces=len(erasure.face_ids)
    )
    return DeletedResponse(
        deleted_persons=len(erasure.person_ids), deleted_faces=len(erasure.face_ids)
    )


@router.delete(
    "/persons/{person_id}/faces/{face_id}",
    response_model=DeletedResponse,
    summary="Erase one face",
    description="Erases one enrolled face of a person (embedding, chip, index entries, cache). "
    "Scope `manage`. Errors: 404 `person_not_found`, `face_not_found`; 503 "
    "`storage_unavailable`.",
)
async def delete_face(
    person_id: str, face_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> DeletedResponse:
    erasure = await state.persons.delete_face(scope, person_id, face_id)
    await state.audit.record(principal, "face.erase", scope.person_key(person_id), face_id=face_id)
    return DeletedResponse(deleted_persons=0, deleted_faces=len(erasure.face_ids))


@router.post(
    "/collections",
    response_model=CollectionOut,
    status_code=201,
    summary="Create a gallery",
    description="Creates a collection (gallery) in your tenant; every person belongs to exactly "
    "one. Scope `manage`. Errors: 409 when it exists; 422 `invalid_name`, "
    "`invalid_value`; 403 `collection_forbidden`.",
)
async def create_collection(
    body: CollectionIn, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> CollectionOut:
    created = await state.persons.create_collection(scope, body.name, body.description)
    await state.audit.record(principal, "collection.create", created.name)
    return collection_out(created, scope)


@router.get(
    "/collections",
    response_model=CollectionListResponse,
    summary="List galleries",
    description="Your tenant's collections with their person counts (`default` always exists). "
    "Scope `manage`. Errors: " + ACCESS_ERRORS + "; 503 `storage_unavailable`.",
)
async def list_collections(state: StateDep, scope: ScopeDep) -> CollectionListResponse:
    items = await state.persons.list_collections(scope)
    return CollectionListResponse(collections=[collection_out(c, scope) for c in items])


@router.delete(
    "/collections/{name}",
    response_model=DeletedResponse,
    summary="Delete a gallery (force=true erases its persons too)",
    description="Deletes a collection; a non-empty one needs `force=true` and erases every "
    "person, face and photo in it. Scope `manage`. Errors: 404 "
    "`collection_not_found`; 409 when not empty without `force`; 403 "
    "`collection_forbidden`.",
)
async def delete_collection(
    name: str,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    force: Annotated[bool, Query()] = False,
) -> DeletedResponse:
    erasure = await state.persons.delete_collection(scope, name, force)
    await state.audit.record(
        principal,
        "collection.erase",
        scope.collection_key(name),
        persons=len(erasure.person_ids),
        faces=len(erasure.face_ids),
    )
    return DeletedResponse(
        deleted_persons=len(erasure.person_ids), deleted_faces=len(erasure.face_ids)
    )
