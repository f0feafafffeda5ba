"""Managing keys on behalf of someone (an admin key over HTTP, the operator at the command line),
with the rules of who may do what, and an audit event for every change.

An admin key manages its own tenant's keys and sees its own tenant's audit events. An admin key
of tenant ``default`` that is not limited to some collections (and the command line, and every
request while authentication is off) manages every tenant. Nobody hands out more than they hold:
a new key's scopes must be among the creator's, and a creator limited to some collections can
only create keys limited to some of those.
"""

from __future__ import annotations

from facerec.auth.access import AuthServices
from facerec.auth.audit import KEY_CREATE, KEY_REVOKE
from facerec.auth.keys import KeyRecord, KeySpec
from facerec.auth.principal import DEFAULT_TENANT, Principal
from facerec.auth.service import utcnow
from facerec.errors import ForbiddenError, NotFoundError


def is_operator(actor: Principal) -> bool:
    return actor.tenant == DEFAULT_TENANT and actor.collections is None


def may_manage(actor: Principal, tenant: str) -> bool:
    return actor.tenant == tenant or is_operator(actor)


def visible_tenant(actor: Principal, tenant: str | None) -> str | None:
    """The tenant filter a listing by ``actor`` uses (None: every tenant)."""
    if tenant is None:
        return None if is_operator(actor) else actor.tenant
    if not may_manage(actor, tenant):
        raise ForbiddenError(
            f"this key may not manage tenant {tenant!r}", code="tenant_forbidden", tenant=tenant
        )
    return tenant


async def create_key(
    auth: AuthServices, actor: Principal, spec: KeySpec, *, via: str
) -> tuple[str, KeyRecord]:
    spec = spec.validated(utcnow())  # bad input says so before any permission question
    visible_tenant(actor, spec.tenant)
    if not spec.scopes <= actor.scopes:
        raise ForbiddenError(
            "a key cannot grant scopes its creator lacks",
            code="insufficient_scope",
            missing=sorted(spec.scopes - actor.scopes),
        )
    if actor.collections is not None and (
        spec.collections is None or not spec.collections <= actor.collections
    ):
        raise ForbiddenError(
            "a key limited to some collections can only create keys limited to those",
            code="collection_forbidden",
        )
    text, record = await auth.keys.create(spec, created_by=actor.key_id or via)
    await auth.audit.record(
        actor,
        KEY_CREATE,
        record.key_id,
        tenant=record.tenant,
        scopes=sorted(record.scopes),
        via=via,
    )
    return text, record


async def revoke_key(auth: AuthServices, actor: Principal, key_id: str, *, via: str) -> KeyRecord:
    record = await auth.keys.get(key_id)
    if not may_manage(actor, record.tenant):  # another tenant's key: as if it did not exist
        raise NotFoundError(f"no API key {key_id!r}", code="key_not_found", key_id=key_id)
    revoked = await auth.keys.revoke(key_id)
    await auth.audit.record(actor, KEY_REVOKE, key_id, tenant=revoked.tenant, via=via)
    return revoked


async def list_keys(auth: AuthServices, actor: Principal, tenant: str | None) -> list[KeyRecord]:
    return await auth.keys.list(visible_tenant(actor, tenant))
