"""Tenants: what a caller may see of the gallery, and the keys its things are stored under.

Collections and person ids are stored under tenant-qualified keys: ``<tenant>~<name>`` (``~`` is
allowed in neither names nor ids), and bare for the ``default`` tenant, which owns every gallery
made before tenants existed. Everything below the API (services, repository, vector index shards,
cache keys, change log) works with these keys, so two tenants' collections and persons can never
meet: the same collection name or person id in two tenants are two different keys. The API maps
names to keys on the way in and back on the way out (:class:`TenantScope`); another tenant's
things are simply other keys, so they answer exactly like things that do not exist (404) and
existence never leaks. A key limited to some collections gets 403 ``collection_forbidden`` for the
others of its own tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

from facerec.auth.principal import Principal
from facerec.errors import ForbiddenError
from facerec.storage.models import check_collection_name, check_id
from facerec.values import DEFAULT_TENANT, qualify, split_key


@dataclass(frozen=True)
class TenantScope:
    """One caller's view: its tenant and, optionally, the only collections its key may touch."""

    tenant: str = DEFAULT_TENANT
    collections: frozenset[str] | None = None  # None: every collection of the tenant

    @classmethod
    def of(cls, principal: Principal) -> TenantScope:
        return cls(principal.tenant, principal.collections)

    def allows(self, name: str) -> bool:
        return self.collections is None or name in self.collections

    def collection_key(self, name: str) -> str:
        """The stored key of a collection name (validated) this caller may use."""
        check_collection_name(name)
        if not self.allows(name):
            raise ForbiddenError(
                f"this API key may not use collection {name!r}",
                code="collection_forbidden",
                collection=name,
            )
        return qualify(self.tenant, name)

    def owns_collection(self, key: str) -> bool:
        tenant, name = split_key(key)
        return tenant == self.tenant and self.allows(name)

    def collection_name(self, key: str) -> str:
        return split_key(key)[1]

    def person_key(self, person_id: str) -> str:
        """The stored key of a person id (validated) in this caller's tenant."""
        return qualify(self.tenant, check_id(person_id, "person"))

    def person_id(self, key: str) -> str:
        return split_key(key)[1]

    def collection_keys(self) -> frozenset[str] | None:
        """The stored keys of the only collections this caller's key may touch (None: all)."""
        if self.collections is None:
            return None
        return frozenset(qualify(self.tenant, name) for name in self.collections)
