"""API key format, hashing and the stored key record.

A key reads ``fk_<key_id>_<secret>``: ``key_id`` is 12 lowercase hex characters, public and stored
in clear (it finds the record); ``secret`` is 32 random bytes, URL-safe base64, shown once at
creation and never stored. The database keeps ``HMAC-SHA256(pepper, key_id "." secret)``: the
secret has 256 bits of entropy, so a fast keyed hash is enough (nothing to brute-force), and
without the pepper (``FACEREC_AUTH__PEPPER``) a copy of the database cannot mint keys. Changing
the pepper invalidates every key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from facerec.auth.principal import SCOPES, Principal, is_tenant_name
from facerec.errors import InvalidValueError

KEY_PREFIX = "fk_"
KEY_ID_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32
# Used when no pepper is configured: hashes stay keyed and domain-separated, but anyone who can
# write the database could then insert a key of their own.
_DEFAULT_PEPPER = b"facerec-api-key-v1"
_KEY_PATTERN = re.compile(r"fk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"(\d{1,6})([dhm])")
NAME_MAX = 128
COLLECTION_NAME_MAX = 64


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str


def new_key() -> tuple[str, ParsedKey]:
    """A fresh key: the full text (shown once) and its parts."""
    parsed = ParsedKey(secrets.token_hex(KEY_ID_BYTES), secrets.token_urlsafe(SECRET_BYTES))
    return f"{KEY_PREFIX}{parsed.key_id}_{parsed.secret}", parsed


def parse_key(text: str) -> ParsedKey | None:
    """The parts of a well-formed key, or None (never raises: the text is untrusted)."""
    match = _KEY_PATTERN.fullmatch(text.strip())
    if match is None:
        return None
    return ParsedKey(match.group(1), match.group(2))


class KeyHasher:
    def __init__(self, pepper: str | None) -> None:
        self._pepper = pepper.encode("utf-8") if pepper else _DEFAULT_PEPPER

    def hash(self, key: ParsedKey) -> str:
        message = f"{key.key_id}.{key.secret}".encode("ascii")
        return hmac.new(self._pepper, message, hashlib.sha256).hexdigest()

    def matches(self, key: ParsedKey, stored_hash: str) -> bool:
        return hmac.compare_digest(self.hash(key), stored_hash)


@dataclass(frozen=True)
class KeyRecord:
    """One stored key (never its secret)."""

    key_id: str
    tenant: str
    name: str
    scopes: frozenset[str]
    collections: frozenset[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str
    secret_hash: str

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def principal(self) -> Principal:
        return Principal(
            tenant=self.tenant,
            key_id=self.key_id,
            scopes=self.scopes,
            collections=self.collections,
        )

    def public(self, now: datetime) -> dict[str, object]:
        """The record as shown by ``keys list`` and the admin API."""
        return {
            "key_id": self.key_id,
            "tenant": self.tenant,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "collections": None if self.collections is None else sorted(self.collections),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "created_by": self.created_by,
            "status": self.status(now),
        }


@dataclass(frozen=True)
class KeySpec:
    """What a new key may do; checked by :meth:`validated`."""

    tenant: str
    scopes: frozenset[str]
    collections: frozenset[str] | None = None
    expires_at: datetime | None = None
    name: str = ""

    def validated(self, now: datetime) -> KeySpec:
        if not is_tenant_name(self.tenant):
            raise InvalidValueError(
                "tenant must match [a-z0-9][a-z0-9_-]{0,31}", code="invalid_tenant"
            )
        unknown = self.scopes - SCOPES
        if not self.scopes or unknown:
            raise InvalidValueError(
                f"scopes must be a non-empty subset of {sorted(SCOPES)}",
                code="invalid_scope",
                unknown=sorted(unknown),
            )
        if self.collections is not None and (
            not self.collections
            or any(not c or len(c) > COLLECTION_NAME_MAX for c in self.collections)
        ):
            raise InvalidValueError(
                "collections must be a non-empty list of collection names",
                code="invalid_collections",
            )
        if self.expires_at is not None and self.expires_at <= now:
            raise InvalidValueError("expires_at is in the past", code="invalid_expiry")
        if len(self.name) > NAME_MAX or "\x00" in self.name:
            raise InvalidValueError(f"name is longer than {NAME_MAX} characters")
        return self


def split_list(text: str | None) -> frozenset[str] | None:
    """``"a, b"`` -> {"a", "b"}; None or blank -> None."""
    if text is None or not text.strip():
        return None
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """``30d``, ``12h``, ``90m`` from ``now``; an ISO date (midnight UTC) or datetime (UTC when
    naive)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        amount, unit = int(duration.group(1)), duration.group(2)
        span = {"d": timedelta(days=amount), "h": timedelta(hours=amount)}.get(
            unit, timedelta(minutes=amount)
        )
        return now + span
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValueError(
            "expires must be a date (2027-01-01), a datetime or a duration (30d, 12h, 90m)",
            code="invalid_expiry",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
