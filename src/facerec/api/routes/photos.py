"""Stored photos: every face tagged (each identity once), corrections and erasure. Thin routes
over :class:`~facerec.domain.photos.PhotoService`; suggested new persons are in
:mod:`facerec.api.routes.suggestions`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile

from facerec.api.auth import PrincipalDep
from facerec.api.convert import tag_options
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.photo_convert import photo_out, rounded
from facerec.api.schemas.common import GALLERY_RESPONSES, IMAGE_ERRORS
from facerec.api.schemas.photos import (
    AssignRequest,
    AssignResponse,
    PersonPhotoOut,
    PersonPhotosResponse,
    PhotoDeletedResponse,
    PhotoRequest,
    PhotoResponse,
    RejectRequest,
)
from facerec.api.uploads import ImageSource, OffloadedJSONRoute, image_bytes
from facerec.auth.principal import Principal
from facerec.domain.probes import ProcessingMode
from facerec.domain.tenancy import TenantScope
from facerec.domain.timing import StageTimer
from facerec.state import AppState

router = APIRouter(tags=["Photos"], responses=GALLERY_RESPONSES, route_class=OffloadedJSONRoute)
PHOTOS = "/api/photos"


async def _add(
    state: AppState,
    principal: Principal,
    scope: TenantScope,
    source: ImageSource,
    body: PhotoRequest,
) -> PhotoResponse:
    collection = await state.persons.collection_key(scope, body.collection)
    image = await image_bytes(source, state.settings.limits)
    timer = StageTimer(state.metrics.stage)
    options = tag_options(body, collection)
    view = await state.photos.add(
        scope, body.photo_id, image, options, replace=body.replace, timer=timer
    )
    await state.audit.record(
        principal, "photo.tag", view.photo.id, collection=collection, faces=len(view.photo.faces)
    )
    return photo_out(view, scope, timer)


@router.post(
    PHOTOS,
    response_model=PhotoResponse,
    summary="Tag every face of a photo and store it",
    description="Tags every face like recognize-all (each identity at most once) and stores the "
    "result: boxes, quality, embeddings, the assigned person or unknown and the top-k "
    "candidates (image bytes only with `FACEREC_PHOTOS__STORE_IMAGES=true`). "
    "Publishes a `photo.tagged` event. Scope `enroll`. Errors: 409 `photo_exists` "
    "(without `replace`); 400 `invalid_photo_id`; 404 `collection_not_found`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`.",
)
async def add_photo(
    body: PhotoRequest, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> PhotoResponse:
    return await _add(state, principal, scope, body.image_base64, body)


@router.post(
    f"{PHOTOS}/upload",
    response_model=PhotoResponse,
    summary="Tag and store a photo (multipart)",
    description="The same as `POST /api/photos` with the image uploaded. Form fields: `file` (the "
    "image: JPG, PNG, BMP, TIFF or WEBP, recognised by content; the file name is "
    "ignored), `photo_id` (required, 1-64 characters), `collection`, `model_name`, "
    "`top_k` (1-20), `target_fpir`, `similarity_threshold`, `min_margin`, `max_faces` "
    "(1-200), `min_quality`, `processing_mode`, `replace` (default false). Scope "
    "`enroll`. Errors: 409 `photo_exists` (without `replace`); 400 "
    "`invalid_photo_id`; 404 `collection_not_found`; "
    + IMAGE_ERRORS
    + "; 503 `storage_unavailable`.",
)
async def add_photo_upload(
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
    file: Annotated[UploadFile, File()],
    photo_id: Annotated[str, Form(min_length=1, max_length=64)],
    collection: Annotated[str, Form()] = "default",
    model_name: Annotated[str, Form()] = "auto",
    top_k: Annotated[int, Form(ge=1, le=20)] = 3,
    target_fpir: Annotated[float | None, Form(gt=0.0, lt=1.0)] = None,
    similarity_threshold: Annotated[float | None, Form(ge=0.0, le=1.0)] = None,
    min_margin: Annotated[float, Form(ge=0.0, le=1.0)] = 0.05,
    max_faces: Annotated[int, Form(ge=1, le=200)] = 50,
    min_quality: Annotated[float, Form(ge=0.0, le=100.0)] = 0.0,
    processing_mode: Annotated[ProcessingMode, Form()] = ProcessingMode.BALANCED,
    replace: Annotated[bool, Form()] = False,
) -> PhotoResponse:
    body = PhotoRequest(
        photo_id=photo_id,
        image_base64="",
        collection=collection,
        model_name=model_name,
        top_k=top_k,
        target_fpir=target_fpir,
        similarity_threshold=similarity_threshold,
        min_margin=min_margin,
        max_faces=max_faces,
        min_quality=min_quality,
        processing_mode=processing_mode,
        replace=replace,
    )
    return await _add(state, principal, scope, file, body)


@router.get(
    f"{PHOTOS}/{{photo_id}}",
    response_model=PhotoResponse,
    summary="One stored photo",
    description="The stored photo with every face's tag, status and candidates. Scope `manage`. "
    "Errors: 404 `photo_not_found`; 400 `invalid_photo_id`.",
)
async def get_photo(photo_id: str, state: StateDep, scope: ScopeDep) -> PhotoResponse:
    return photo_out(await state.photos.get(scope, photo_id), scope)


@router.delete(
    f"{PHOTOS}/{{photo_id}}",
    response_model=PhotoDeletedResponse,
    summary="Erase a photo",
    description="Erases every record of the photo's faces (candidates, rejections, cached "
    "results); faces it gave to persons stay theirs. Scope `manage`. Errors: 404 "
    "`photo_not_found`; 400 `invalid_photo_id`.",
)
async def delete_photo(
    photo_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> PhotoDeletedResponse:
    erased = await state.photos.delete(scope, photo_id)
    await state.audit.record(principal, "photo.erase", erased.photo_ids[0])
    return PhotoDeletedResponse(photo_id=photo_id, deleted_faces=len(erased.face_ids))


@router.post(
    f"{PHOTOS}/{{photo_id}}/retag",
    response_model=PhotoResponse,
    summary="Tag the stored faces again against the gallery as it is now",
    description="Re-tags from the stored embeddings (no image needed); confirmed faces keep their "
    "person, rejected persons are never proposed. Scope `enroll`. Errors: 404 "
    "`photo_not_found`; 503 `storage_unavailable`.",
)
async def retag_photo(
    photo_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> PhotoResponse:
    view = await state.photos.retag(scope, photo_id)
    await state.audit.record(principal, "photo.retag", view.photo.id)
    return photo_out(view, scope)


@router.post(
    f"{PHOTOS}/{{photo_id}}/faces/{{index}}/confirm",
    response_model=PhotoResponse,
    summary="Confirm a face's tag",
    description="Marks the face's automatic tag as confirmed by a user. Scope `enroll`. Errors: "
    "404 `photo_not_found`, `photo_face_not_found`; 409 `photo_face_not_tagged`.",
)
async def confirm_face(
    photo_id: str, index: int, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> PhotoResponse:
    view = await state.photos.confirm(scope, photo_id, index)
    await state.audit.record(principal, "photo.confirm", view.photo.id, face_index=index)
    return photo_out(view, scope)


@router.post(
    f"{PHOTOS}/{{photo_id}}/faces/{{index}}/assign",
    response_model=AssignResponse,
    summary="This face is that person: it becomes one of the person's enrolled faces",
    description="Assigns the face to `person_id`; in one transaction the face becomes one of the "
    "person's enrolled faces. Scope `enroll`. Errors: 404 `photo_not_found`, "
    "`photo_face_not_found`, `person_not_found`; 409 `person_in_other_collection`, "
    "`photo_face_unusable`, `photo_face_enrolled`, `person_already_in_photo`.",
)
async def assign_face(
    photo_id: str,
    index: int,
    body: AssignRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
) -> AssignResponse:
    view, face = await state.photos.assign(scope, photo_id, index, body.person_id)
    await state.audit.record(
        principal, "photo.assign", view.photo.id, face_index=index, face_id=face.id
    )
    out = photo_out(view, scope)
    return AssignResponse(**out.model_dump(), face_id=face.id)


@router.post(
    f"{PHOTOS}/{{photo_id}}/faces/{{index}}/reject",
    response_model=PhotoResponse,
    summary="This face is not that person: never proposed again for it",
    description="Stores a rejection: `person_id` is never proposed for this face again (also "
    "after a retag or a replace with the same image); the person's template is not "
    "touched. Scope `enroll`. Errors: 404 `photo_not_found`, `photo_face_not_found`; "
    "409 `photo_face_confirmed`.",
)
async def reject_face(
    photo_id: str,
    index: int,
    body: RejectRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
) -> PhotoResponse:
    view = await state.photos.reject(scope, photo_id, index, body.person_id)
    await state.audit.record(principal, "photo.reject", view.photo.id, face_index=index)
    return photo_out(view, scope)


@router.get(
    "/api/face-recognition/persons/{person_id}/photos",
    response_model=PersonPhotosResponse,
    summary="The photos a person is tagged in (cursor pagination)",
    description="Every stored photo face tagged or confirmed as the person; pass `next_cursor` as "
    "`cursor` for the next page. Scope `manage`. Errors: 404 `person_not_found`.",
)
async def person_photos(
    person_id: str,
    state: StateDep,
    scope: ScopeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> PersonPhotosResponse:
    page = await state.photos.person_photos(scope, person_id, limit=limit, cursor=cursor)
    return PersonPhotosResponse(
        person_id=person_id,
        photos=[
            PersonPhotoOut(
                photo_id=scope.person_id(p.photo_id),
                collection=scope.collection_name(p.collection),
                face_index=p.face_index,
                status=p.status,
                decided_by=p.decided_by,
                similarity=rounded(p.similarity),
                tagged_at=p.created_at,
            )
            for p in page.items
        ],
        next_cursor=page.next_cursor,
    )
