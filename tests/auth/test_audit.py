"""The audit log: what is kept, filters and pages, and that recording never fails a request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from facerec.auth.audit import AuditLog
from facerec.auth.principal import Principal
from facerec.auth.store import AuditQuery, SqlAuthStore

ACME = Principal("acme", "k1", frozenset({"enroll"}))
OTHER = Principal("other", "k2", frozenset({"manage"}))


async def test_record_and_query(store: SqlAuthStore) -> None:
    moments = iter(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(10))
    audit = AuditLog(store, lambda: next(moments))
    await audit.record(ACME, "person.enroll", "p1", collection="door", faces=2)
    await audit.record(ACME, "person.erase", "p1", ids=["f1", "f2"])
    await audit.record(OTHER, "person.erase", "p9")
    events = await audit.query(AuditQuery())
    assert [e.action for e in events] == ["person.erase", "person.erase", "person.enroll"]
    enroll = events[-1]
    assert (enroll.tenant, enroll.key_id, enroll.target) == ("acme", "k1", "p1")
    assert enroll.details == {"collection": "door", "faces": 2}
    assert events[1].details == {"ids": ["f1", "f2"]}
    assert [e.target for e in await audit.query(AuditQuery(tenant="acme"))] == ["p1", "p1"]
    assert len(await audit.query(AuditQuery(action="person.erase"))) == 2
    since = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert len(await audit.query(AuditQuery(since=since))) == 2
    page = await audit.query(AuditQuery(limit=2))
    rest = await audit.query(AuditQuery(limit=2, before_seq=page[-1].seq))
    assert [e.seq for e in page + rest] == [e.seq for e in events]


async def test_only_small_facts_are_kept(store: SqlAuthStore) -> None:
    audit = AuditLog(store, lambda: datetime.now(UTC))
    image = np.zeros((4, 4), dtype=np.uint8)
    await audit.record(
        ACME,
        "person.enroll",
        "p1",
        note="x" * 1000,
        image=image,  # type: ignore[arg-type]
        raw=b"\x00\x01",  # type: ignore[arg-type]
        mixed=[1, "a"],  # type: ignore[list-item]
    )
    (event,) = await audit.query(AuditQuery())
    assert set(event.details) == {"note"} and len(event.details["note"]) == 256


async def test_a_storage_failure_is_logged_not_raised(
    store: SqlAuthStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(**_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "append_audit", broken)
    await AuditLog(store, lambda: datetime.now(UTC)).record(ACME, "person.erase", "p1")
    assert "audit event not stored" in caplog.text and "person.erase" in caplog.text
