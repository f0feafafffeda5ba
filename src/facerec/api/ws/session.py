"""A socket's config turned into a :class:`~facerec.domain.streams.StreamSession`: the caller's
collection, the analysis options of its models, and the hooks the session reports through.
"""

from __future__ import annotations

from dataclasses import replace

from facerec.api.schemas.streams import StreamConfigIn
from facerec.domain.streams import StreamConfig, StreamSession
from facerec.domain.tagging import TagOptions
from facerec.domain.tenancy import TenantScope
from facerec.errors import NotFoundError
from facerec.state import AppState


async def open_session(state: AppState, scope: TenantScope, body: StreamConfigIn) -> StreamSession:
    """The session a config asks for: its collection (404 when missing) and models checked."""
    collection = await state.persons.collection_key(scope, body.collection)
    repository = state.identification.repository
    try:
        await repository.get_collection(collection)
    except NotFoundError as exc:
        raise NotFoundError(
            f"collection {body.collection!r} not found",
            code="collection_not_found",
            collection=body.collection,
        ) from exc
    tag = TagOptions(
        collection=collection,
        model=body.model_name,
        target_fpir=body.target_fpir,
        similarity_threshold=body.similarity_threshold,
        min_margin=body.min_margin,
        max_faces=body.max_faces,
        min_quality=body.min_quality,
        detector=body.detector,
    )
    analysis = await state.tagging.options(tag)
    if state.queries.check_liveness(body.check_liveness):
        analysis = replace(analysis, liveness=state.queries.liveness_model())

    config = StreamConfig(
        tenant=scope.tenant,
        collection=collection,
        collection_name=body.collection,
        tag=tag,
        analysis=analysis,
        source=body.source,
    )
    return StreamSession(
        tagging=state.tagging,
        config=config,
        publish=state.events.publish,
        person_id=scope.person_id,
    )
