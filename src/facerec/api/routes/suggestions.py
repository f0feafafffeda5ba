"""Suggested new persons: clusters of unknown faces across stored photos, accepted as a person
or dismissed. Thin routes over :class:`~facerec.domain.photos.PhotoService`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from facerec.api.auth import PrincipalDep
from facerec.api.convert import bbox_out, person_out
from facerec.api.deps import ScopeDep, StateDep
from facerec.api.schemas.common import GALLERY_RESPONSES
from facerec.api.schemas.photos import (
    AcceptRequest,
    AcceptResponse,
    DismissResponse,
    SuggestionFaceOut,
    SuggestionListResponse,
    SuggestionOut,
)

router = APIRouter(tags=["Photos"], responses=GALLERY_RESPONSES)
SUGGESTIONS = "/api/photo-suggestions"


@router.get(
    SUGGESTIONS,
    response_model=SuggestionListResponse,
    summary="Suggested new persons: clusters of unknown faces across stored photos",
    description="Clusters of unknown faces (Chinese whispers per collection and embedding space) "
    "with their size and cohesion; accept one to create a person. Scope `manage`. "
    "Errors: 404 `collection_not_found`; 403 `collection_forbidden`.",
)
async def list_suggestions(
    state: StateDep,
    scope: ScopeDep,
    collection: Annotated[str | None, Query()] = None,
) -> SuggestionListResponse:
    found = await state.photos.suggestions(scope, collection)
    return SuggestionListResponse(
        suggestions=[
            SuggestionOut(
                suggestion_id=s.id,
                collection=scope.collection_name(s.collection),
                embedding_space=s.space,
                size=len(s.faces),
                cohesion=round(s.cohesion, 4),
                faces=[
                    SuggestionFaceOut(
                        photo_id=scope.person_id(f.photo_id),
                        index=f.index,
                        bbox=bbox_out(f.bbox),
                        quality=round(f.quality, 1),
                    )
                    for f in s.faces
                ],
            )
            for s in found
        ]
    )


@router.post(
    f"{SUGGESTIONS}/{{suggestion_id}}/accept",
    response_model=AcceptResponse,
    status_code=201,
    summary="Accept a suggestion as a new person (its faces are enrolled)",
    description="Creates a person whose enrolled faces are the suggestion's, in one transaction "
    "(201). Scope `enroll`. Errors: 404 `suggestion_not_found`; 422 `invalid_name`, "
    "`invalid_metadata`; 409 when `person_id` exists.",
)
async def accept_suggestion(
    suggestion_id: str,
    body: AcceptRequest,
    state: StateDep,
    principal: PrincipalDep,
    scope: ScopeDep,
) -> AcceptResponse:
    person, faces = await state.photos.accept(
        scope,
        suggestion_id,
        name=body.person_name,
        person_id=body.person_id,
        metadata=body.metadata,
    )
    await state.audit.record(
        principal, "suggestion.accept", person.id, suggestion=suggestion_id, faces=len(faces)
    )
    return AcceptResponse(person=person_out(person, scope), face_ids=[f.id for f in faces])


@router.post(
    f"{SUGGESTIONS}/{{suggestion_id}}/dismiss",
    response_model=DismissResponse,
    summary="Dismiss a suggestion: its faces are not suggested again",
    description="Dismisses the suggestion; its faces are never suggested again. Scope `enroll`. "
    "Errors: 404 `suggestion_not_found`.",
)
async def dismiss_suggestion(
    suggestion_id: str, state: StateDep, principal: PrincipalDep, scope: ScopeDep
) -> DismissResponse:
    dismissed = await state.photos.dismiss(scope, suggestion_id)
    await state.audit.record(principal, "suggestion.dismiss", suggestion_id, faces=dismissed)
    return DismissResponse(suggestion_id=suggestion_id, dismissed_faces=dismissed)
