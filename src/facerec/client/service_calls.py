"""The service's own endpoints, once: its models, health and readiness, and the admin ones (API
keys, the audit log, gallery migrations), with their method, path, body and response model.

Apart from :mod:`.calls` (faces, persons and photos) because these are about the service rather
than a gallery; both clients turn them into requests the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from facerec.api.routes.admin import (
    AuditResponse,
    KeyCreatedResponse,
    KeyListResponse,
    KeyRevokedResponse,
)
from facerec.api.routes.migrations import MigrationListResponse, MigrationResponse
from facerec.api.routes.system import Health, ModelsResponse, Readiness
from facerec.client._core import Call, compact, json_call

ADMIN = "/api/admin"


# --- system, admin, migrations ---------------------------------------------------------------


def models() -> Call[ModelsResponse]:
    return Call("GET", "/api/models", ModelsResponse)


def health() -> Call[Health]:
    return Call("GET", "/health", Health)


def ready() -> Call[Readiness]:
    return Call("GET", "/ready", Readiness, also_ok=frozenset({503}))


def create_key(scopes: list[str], options: dict[str, Any]) -> Call[KeyCreatedResponse]:
    return json_call("POST", f"{ADMIN}/keys", KeyCreatedResponse, {"scopes": scopes, **options})


def list_keys(tenant: str | None) -> Call[KeyListResponse]:
    return Call("GET", f"{ADMIN}/keys", KeyListResponse, params=compact({"tenant": tenant}))


def revoke_key(key_id: str) -> Call[KeyRevokedResponse]:
    return Call("DELETE", f"{ADMIN}/keys/{key_id}", KeyRevokedResponse)


def audit(params: dict[str, Any]) -> Call[AuditResponse]:
    since = params.get("since")
    if isinstance(since, datetime):
        params = params | {"since": since.isoformat()}
    return Call("GET", f"{ADMIN}/audit", AuditResponse, params=compact(params))


def start_migration(collection: str, to_model: str) -> Call[MigrationResponse]:
    body = {"collection": collection, "to_model": to_model}
    return json_call("POST", f"{ADMIN}/migrations", MigrationResponse, body)


def list_migrations(collection: str | None) -> Call[MigrationListResponse]:
    params = compact({"collection": collection})
    return Call("GET", f"{ADMIN}/migrations", MigrationListResponse, params=params)


def get_migration(migration_id: str) -> Call[MigrationResponse]:
    return Call("GET", f"{ADMIN}/migrations/{migration_id}", MigrationResponse)


def migration_action(
    migration_id: str, action: str, force: bool = False
) -> Call[MigrationResponse]:
    params = {"force": "true"} if force else None
    path = f"{ADMIN}/migrations/{migration_id}/{action}"
    return Call("POST", path, MigrationResponse, params=params)
