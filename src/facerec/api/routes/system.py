"""Health, readiness, metrics and the model list."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from facerec import __version__
from facerec.api.deps import StateDep
from facerec.api.schemas.common import ACCESS_ERRORS, ERROR_RESPONSES
from facerec.state import AppState

router = APIRouter(tags=["System"])


class Health(BaseModel):
    status: str = "ok"
    version: str = __version__


class Readiness(BaseModel):
    ready: bool
    components: dict[str, str]
    reason: str | None = None


class ModelOut(BaseModel):
    name: str
    task: str
    family: str
    version: str
    source: str = Field(description="pypi:<package> or pack:<name> (downloaded or imported file)")
    license: str
    license_url: str = ""
    commercial_use: bool = Field(
        description="whether the licence allows commercial use; `auto` never picks a model "
        "that does not unless FACEREC_MODELS__ALLOW_NON_COMMERCIAL=true"
    )
    aliases: list[str] = Field(
        default_factory=list, description="other names that select this model (best installed)"
    )
    description: str
    installed: bool
    not_installed_reason: str = ""
    loaded: bool
    memory_bytes: int
    execution_provider: str
    last_used_seconds_ago: float | None = None


class ModelsResponse(BaseModel):
    success: bool = True
    models: list[ModelOut]
    memory_budget_bytes: int
    memory_kind: str = Field(description="ram, or vram when a CUDA provider is active")
    memory_loaded_bytes: int = Field(description="loaded models (bulk enrollment's included)")
    bulk_memory_bytes: int = Field(
        0, description="of which bulk enrollment's own sessions (models.bulk_intra_op_threads)"
    )
    providers: list[str]


@router.get(
    "/health",
    response_model=Health,
    summary="Liveness: the process is up",
    description="Always 200 while the process runs; no key needed. Use it as the liveness probe.",
)
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: models and storage initialised and the database reachable (else 503)",
    description="200 once start-up (migrations, model preload) has finished and the database "
    "answers; 503 with `reason` (`starting`, `storage_unavailable`, ...) otherwise. "
    "No key needed. Use it as the readiness probe.",
    responses={503: {"model": Readiness}},
)
async def ready(request: Request) -> Response:
    state: AppState | None = getattr(request.app.state, "facerec", None)
    if state is None:
        body = Readiness(ready=False, components={}, reason="starting")
        return JSONResponse(status_code=503, content=body.model_dump())
    ready = state.ready
    reason = state.startup_error
    if ready and state.repository is not None:
        # Ready means "can serve": a database outage turns it 503 and back by itself.
        ready = await state.repository.ping()
        state.components["storage"] = "ok" if ready else "unavailable"
        reason = None if ready else "storage_unavailable"
    body = Readiness(ready=ready, components=state.components, reason=reason)
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Prometheus text format: request counts and durations by route template, "
    "inference stage times, model events and memory, cache errors, overload and "
    "filtered-face counters. Needs an `admin` key or the bearer "
    "`FACEREC_AUTH__METRICS_TOKEN`. Errors: 401 `unauthorized`, `invalid_api_key`; "
    "403 `insufficient_scope`.",
    responses={s: ERROR_RESPONSES[s] for s in (401, 403)},
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    state: AppState | None = getattr(request.app.state, "facerec", None)
    payload = state.metrics.render() if state is not None else b""
    return Response(payload, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get(
    "/api/models",
    response_model=ModelsResponse,
    summary="Every model the service knows",
    description="Every model in the catalogue: task, family, source, licence and whether "
    "commercial use is allowed, aliases, installed / loaded, memory and execution "
    "provider, plus the memory budget. Scope `detect`. Errors: "
    + ACCESS_ERRORS
    + "; 503 `not_ready`.",
    responses={s: ERROR_RESPONSES[s] for s in (401, 403, 503)},
)
async def list_models(state: StateDep) -> ModelsResponse:
    models = [
        ModelOut(
            name=s.name,
            task=s.task,
            family=s.family,
            version=s.version,
            source=s.source,
            license=s.license,
            license_url=s.license_url,
            commercial_use=s.commercial_use,
            aliases=list(s.aliases),
            description=s.description,
            installed=s.installed,
            not_installed_reason=s.not_installed_reason,
            loaded=s.loaded,
            memory_bytes=s.memory_bytes,
            execution_provider=s.provider,
            last_used_seconds_ago=None
            if s.last_used_seconds_ago is None
            else round(s.last_used_seconds_ago, 1),
        )
        for s in state.models.status()
    ]
    return ModelsResponse(
        models=models,
        memory_budget_bytes=state.models.budget_bytes,
        memory_kind=state.models.memory_kind,
        memory_loaded_bytes=sum(m.loaded_bytes() for m in state.model_managers),
        bulk_memory_bytes=state.bulk_models.loaded_bytes() if state.bulk_models else 0,
        providers=list(state.models.runtime.providers),
    )
