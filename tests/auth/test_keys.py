"""Key format, hashing and the rules a new key must follow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from facerec.auth.keys import (
    KeyHasher,
    KeySpec,
    new_key,
    parse_expiry,
    parse_key,
    split_list,
)
from facerec.auth.principal import ANONYMOUS, SCOPES, Principal, is_tenant_name
from facerec.errors import InvalidValueError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_new_key_round_trips_and_secrets_differ() -> None:
    text, parsed = new_key()
    assert text.startswith("fk_") and parse_key(text) == parsed
    assert len(parsed.key_id) == 12
    other, _ = new_key()
    assert other != text


@pytest.mark.parametrize(
    "text",
    ["", "fk_", "fk_abc_def", "Bearer fk_x", "fk_ZZZZZZZZZZZZ_" + "a" * 43, "x" * 10_000],
)
def test_malformed_keys_do_not_parse(text: str) -> None:
    assert parse_key(text) is None


def test_hash_is_keyed_and_compares() -> None:
    _, parsed = new_key()
    peppered = KeyHasher("pepper-1")
    stored = peppered.hash(parsed)
    assert len(stored) == 64 and parsed.secret not in stored
    assert peppered.matches(parsed, stored)
    assert not KeyHasher("pepper-2").matches(parsed, stored)
    assert not KeyHasher(None).matches(parsed, stored)
    _, another = new_key()
    assert not peppered.matches(another, stored)


def test_spec_validation() -> None:
    ok = KeySpec(tenant="acme-1", scopes=frozenset({"detect"}))
    assert ok.validated(NOW) is ok
    bad = [
        KeySpec(tenant="Acme", scopes=frozenset({"detect"})),
        KeySpec(tenant="-x", scopes=frozenset({"detect"})),
        KeySpec(tenant="a" * 33, scopes=frozenset({"detect"})),
        KeySpec(tenant="acme", scopes=frozenset()),
        KeySpec(tenant="acme", scopes=frozenset({"detect", "root"})),
        KeySpec(tenant="acme", scopes=frozenset({"detect"}), collections=frozenset()),
        KeySpec(tenant="acme", scopes=frozenset({"detect"}), expires_at=NOW - timedelta(1)),
        KeySpec(tenant="acme", scopes=frozenset({"detect"}), name="x" * 129),
    ]
    for spec in bad:
        with pytest.raises(InvalidValueError):
            spec.validated(NOW)


def test_parse_expiry() -> None:
    assert parse_expiry(None, NOW) is None
    assert parse_expiry("30d", NOW) == NOW + timedelta(days=30)
    assert parse_expiry("12h", NOW) == NOW + timedelta(hours=12)
    assert parse_expiry("90m", NOW) == NOW + timedelta(minutes=90)
    assert parse_expiry("2027-01-01", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_expiry("2027-01-01T12:00:00", NOW) == datetime(2027, 1, 1, 12, tzinfo=UTC)
    with pytest.raises(InvalidValueError):
        parse_expiry("soon", NOW)


def test_split_list_and_tenant_names() -> None:
    assert split_list(" a, b ,,") == frozenset({"a", "b"})
    assert split_list("") is None and split_list(None) is None
    assert is_tenant_name("default") and is_tenant_name("a_b-9")
    assert not is_tenant_name("") and not is_tenant_name("A")


def test_principal_scopes_and_collections() -> None:
    limited = Principal("acme", "k1", frozenset({"detect"}), frozenset({"door"}))
    assert limited.has_scope("detect") and not limited.has_scope("admin")
    assert limited.may_use_collection("door") and not limited.may_use_collection("hr")
    assert ANONYMOUS.scopes == SCOPES and ANONYMOUS.may_use_collection("anything")
    with pytest.raises(AttributeError):
        limited.tenant = "other"  # type: ignore[misc]
