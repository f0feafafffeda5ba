"""The audit log: who (tenant + key id) did what (action + target id) when.

Only identifiers and small facts go in: never images, vectors, names or metadata. ``details``
keeps str (cut to 256 characters), int, float, bool, None and lists of str; anything else is
dropped. Recording never fails the request: an event that cannot be stored is written to the
service log instead (with the same fields).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from facerec.auth.principal import Principal
from facerec.auth.store import AuditEvent, AuditQuery, SqlAuthStore

logger = logging.getLogger(__name__)

TEXT_MAX = 256
LIST_MAX = 100

# Actions recorded by facerec.auth; the gallery records its own (e.g. "person.enroll").
KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"

Detail = str | int | float | bool | None | Sequence[str]


class AuditLog:
    def __init__(self, store: SqlAuthStore, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    async def record(
        self, principal: Principal, action: str, target: str | None = None, **details: Detail
    ) -> None:
        """Append one event, e.g. ``await state.audit.record(principal, "person.erase",
        person_id, collection="default")``."""
        clean = _clean(details)
        target = None if target is None else str(target)[:255]
        try:
            await self._store.append_audit(
                at=self._now(),
                tenant=principal.tenant,
                key_id=principal.key_id,
                action=action[:64],
                target=target,
                details=clean,
            )
        except Exception:
            logger.exception(
                "audit event not stored: tenant=%s key_id=%s action=%s target=%s details=%s",
                principal.tenant,
                principal.key_id,
                action,
                target,
                clean,
            )

    async def query(self, query: AuditQuery) -> list[AuditEvent]:
        return await self._store.query_audit(query)


def _clean(details: dict[str, Detail]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in details.items():
        if value is None or isinstance(value, bool | int | float):
            clean[name] = value
        elif isinstance(value, str):
            clean[name] = value[:TEXT_MAX]
        elif isinstance(value, list | tuple | set | frozenset) and all(
            isinstance(v, str) for v in value
        ):
            items = list(value) if isinstance(value, list | tuple) else sorted(value)
            clean[name] = [v[:TEXT_MAX] for v in items[:LIST_MAX]]
        else:
            logger.warning("audit detail %r dropped: %s", name, type(value).__name__)
    return clean
