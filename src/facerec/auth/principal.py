"""Who a request acts as: a tenant, the API key used, its scopes and allowed collections.

Imports nothing of ours, so every layer (API, domain, storage) may take a :class:`Principal`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DETECT = "detect"
RECOGNIZE = "recognize"
ENROLL = "enroll"
MANAGE = "manage"
ADMIN = "admin"
SCOPES: frozenset[str] = frozenset({DETECT, RECOGNIZE, ENROLL, MANAGE, ADMIN})

# The tenant that owns every gallery row written before tenants existed, and that every request
# acts as while authentication is off.
DEFAULT_TENANT = "default"
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def is_tenant_name(name: str) -> bool:
    return TENANT_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class Principal:
    """``key_id`` None: no key (authentication off, or the command line). ``collections`` None:
    every collection of the tenant."""

    tenant: str
    key_id: str | None
    scopes: frozenset[str]
    collections: frozenset[str] | None = None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_use_collection(self, name: str) -> bool:
        return self.collections is None or name in self.collections

    @property
    def actor(self) -> str:
        """``tenant/key_id`` (``tenant/-`` without a key), for logs."""
        return f"{self.tenant}/{self.key_id or '-'}"


ANONYMOUS = Principal(tenant=DEFAULT_TENANT, key_id=None, scopes=SCOPES, collections=None)
"""Every request while authentication is off: tenant ``default`` with every scope."""
