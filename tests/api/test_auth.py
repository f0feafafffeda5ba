"""Access control through HTTP: keys required on every route but /health and /ready, scopes,
expiry and revocation, admin endpoints and tenants, the metrics token, rate limits, and the
``facerec keys`` command line against the service's own database."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from facerec.api.auth import OPEN, ROUTE_SCOPES
from facerec.app import create_app
from facerec.auth.keys import KeyRecord, KeySpec, new_key
from facerec.auth.ratelimit import MemoryBuckets, RateLimiter
from facerec.cli import main
from facerec.state import AppState
from tests.api.conftest import make_settings, wait_ready

METRICS_TOKEN = "scrape-token-for-tests"
ALL = ("detect", "recognize", "enroll", "manage", "admin")


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('auth-db') / 'facerec.db'}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path_factory.mktemp("auth"),
        auth={"required": True, "metrics_token": METRICS_TOKEN, "cache_seconds": 0.5},
    )
    settings.db.url = db_url
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def _state(client: TestClient) -> AppState:
    state: AppState = client.app.state.facerec  # type: ignore[attr-defined]
    return state


def make_key(
    client: TestClient,
    *scopes: str,
    tenant: str = "default",
    collections: frozenset[str] | None = None,
) -> str:
    auth = _state(client).auth
    assert auth is not None
    spec = KeySpec(tenant=tenant, scopes=frozenset(scopes), collections=collections)
    text, _ = client.portal.call(functools.partial(auth.keys.create, spec, created_by="test"))
    return text


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _routes(client: TestClient) -> list[tuple[str, str, bool]]:
    """(method, path template, is an APIRoute) of every route the app serves."""
    found = []
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        is_api = isinstance(context.original_route, APIRoute)
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                found.append((method, str(context.path), is_api))
    return found


def test_the_scope_table_covers_exactly_the_routes(client: TestClient) -> None:
    served = {(m, p) for m, p, is_api in _routes(client) if is_api}
    assert served == set(ROUTE_SCOPES)


def test_no_key_is_401_everywhere_but_health_and_ready(client: TestClient) -> None:
    routes = _routes(client)
    assert len(routes) > 25
    for method, template, _ in routes:
        path = re.sub(r"\{[^}]+\}", "x", template)
        response = client.request(method, path)
        if ROUTE_SCOPES.get((method, template)) == OPEN:
            assert response.status_code == 200, path
            continue
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for method, path in (("GET", "/api/nope"), ("POST", "/api/models"), ("GET", "/robots.txt")):
        response = client.request(method, path)
        assert response.status_code == 401  # an unknown route tells nothing without a key
    key = make_key(client, "detect")
    assert client.get("/api/nope", headers=bearer(key)).status_code == 404


def test_scopes_are_enforced(client: TestClient) -> None:
    detect = make_key(client, "detect")
    manage = make_key(client, "manage")
    assert client.get("/api/models", headers=bearer(detect)).status_code == 200
    assert client.get("/api/models", headers={"X-API-Key": detect}).status_code == 200
    refused = client.get("/api/face-recognition/persons", headers=bearer(detect))
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "insufficient_scope",
        "message": "this API key lacks the 'manage' scope",
        "details": {"required": "manage"},
    }
    assert client.get("/api/face-recognition/persons", headers=bearer(manage)).status_code == 200
    for path in ("/api/face-detection/detect", "/api/face-recognition/recognize"):
        assert client.post(path, headers=bearer(manage), json={}).status_code == 403
    # With the scope, the request reaches the route (and its own validation).
    reached = client.post("/api/face-detection/detect", headers=bearer(detect), json={})
    assert reached.status_code in (400, 422)
    assert client.get("/api/admin/keys", headers=bearer(manage)).status_code == 403


def test_invalid_expired_and_revoked_keys_are_401(client: TestClient) -> None:
    auth = _state(client).auth
    assert auth is not None
    for bad in ("nonsense", "fk_000000000000_" + "a" * 43):
        response = client.get("/api/models", headers=bearer(bad))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    text, parsed = new_key()
    past = datetime.now(UTC) - timedelta(days=1)
    expired = KeyRecord(
        key_id=parsed.key_id,
        tenant="default",
        name="",
        scopes=frozenset({"detect"}),
        collections=None,
        created_at=past - timedelta(days=1),
        expires_at=past,
        revoked_at=None,
        created_by="test",
        secret_hash=auth.keys.hasher.hash(parsed),
    )
    client.portal.call(auth.keys.store.add_key, expired)
    response = client.get("/api/models", headers=bearer(text))
    assert response.status_code == 401 and response.json()["error"]["code"] == "key_expired"

    admin = make_key(client, "admin")
    victim = make_key(client, "detect")
    assert client.get("/api/models", headers=bearer(victim)).status_code == 200
    key_id = victim.split("_")[1]
    revoked = client.delete(f"/api/admin/keys/{key_id}", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["key"]["status"] == "revoked"
    response = client.get("/api/models", headers=bearer(victim))
    assert response.status_code == 401 and response.json()["error"]["code"] == "key_revoked"


def test_docs_and_metrics_are_protected_health_is_open(client: TestClient) -> None:
    detect = make_key(client, "detect")
    admin = make_key(client, "admin")
    for path in ("/docs", "/openapi.json", "/redoc", "/metrics"):
        assert client.get(path).status_code == 401, path
    assert client.get("/docs", headers=bearer(detect)).status_code == 200
    schemes = client.get("/openapi.json", headers=bearer(detect)).json()["components"]
    assert set(schemes["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    assert client.get("/metrics", headers=bearer(detect)).status_code == 403
    assert client.get("/metrics", headers=bearer(admin)).status_code == 200
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert client.get("/api/models", headers=bearer(METRICS_TOKEN)).status_code == 401
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200


def test_admin_keys_and_tenants(client: TestClient) -> None:
    operator = make_key(client, *ALL)
    acme_admin = make_key(client, "admin", "detect", tenant="acme")
    other = make_key(client, "detect", tenant="globex")

    created = client.post(
        "/api/admin/keys",
        headers=bearer(acme_admin),
        json={"scopes": ["detect"], "name": "door kiosk", "expires": "30d"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["tenant"] == "acme" and body["key"].startswith(f"fk_{body['key_id']}_")
    assert body["status"] == "active" and body["expires_at"] is not None
    assert client.get("/api/models", headers=bearer(body["key"])).status_code == 200

    def refused(response: Any, code: str) -> None:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == code

    refused(
        client.post(
            "/api/admin/keys",
            headers=bearer(acme_admin),
            json={"scopes": ["detect"], "tenant": "globex"},
        ),
        "tenant_forbidden",
    )
    refused(
        client.post("/api/admin/keys", headers=bearer(acme_admin), json={"scopes": ["manage"]}),
        "insufficient_scope",
    )
    bad = client.post("/api/admin/keys", headers=bearer(acme_admin), json={"scopes": ["root"]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_scope"

    listed = client.get("/api/admin/keys", headers=bearer(acme_admin)).json()["keys"]
    assert {k["tenant"] for k in listed} == {"acme"} and all("key" not in k for k in listed)
    refused(
        client.get("/api/admin/keys", params={"tenant": "globex"}, headers=bearer(acme_admin)),
        "tenant_forbidden",
    )
    everyone = client.get("/api/admin/keys", headers=bearer(operator)).json()["keys"]
    assert {"default", "acme", "globex"} <= {k["tenant"] for k in everyone}

    other_id = other.split("_")[1]
    gone = client.delete(f"/api/admin/keys/{other_id}", headers=bearer(acme_admin))
    assert gone.status_code == 404  # another tenant's key is as if it did not exist
    assert client.get("/api/models", headers=bearer(other)).status_code == 200
    assert client.delete(f"/api/admin/keys/{other_id}", headers=bearer(operator)).status_code == 200

    acme_events = client.get("/api/admin/audit", headers=bearer(acme_admin)).json()["events"]
    assert acme_events and {e["tenant"] for e in acme_events} == {"acme"}
    assert acme_events[0]["action"] == "key.create"
    assert acme_events[0]["target"] == body["key_id"]
    assert acme_events[0]["key_id"] == acme_admin.split("_")[1]
    revokes = client.get(
        "/api/admin/audit", params={"action": "key.revoke"}, headers=bearer(operator)
    ).json()["events"]
    assert other_id in {e["target"] for e in revokes}
    first = client.get("/api/admin/audit", params={"limit": 1}, headers=bearer(operator)).json()
    assert len(first["events"]) == 1 and first["next_cursor"]
    second = client.get(
        "/api/admin/audit",
        params={"limit": 1, "cursor": first["next_cursor"]},
        headers=bearer(operator),
    ).json()
    assert second["events"][0]["seq"] < first["events"][0]["seq"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = client.get("/api/admin/audit", params={"since": future}, headers=bearer(operator))
    assert later.json()["events"] == []


def test_rate_limit_answers_429_with_a_truthful_retry_after(client: TestClient) -> None:
    auth = _state(client).auth
    assert auth is not None
    saved = auth.limiter
    auth.limiter = RateLimiter(MemoryBuckets(rate=0.5, burst=2))
    try:
        key = make_key(client, "detect")
        assert [client.get("/api/models", headers=bearer(key)).status_code for _ in range(2)] == [
            200,
            200,
        ]
        limited = client.get("/api/models", headers=bearer(key))
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert limited.headers["Retry-After"] == "2"  # one token every 2 s
        other = make_key(client, "detect")
        assert client.get("/api/models", headers=bearer(other)).status_code == 200
    finally:
        auth.limiter = saved


def test_cli_keys_on_the_service_database(
    client: TestClient,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FACEREC_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    argv = ["keys", "create", "--tenant", "cli-t", "--scopes", "detect,recognize"]
    assert main([*argv, "--collections", "door,lobby", "--name", "gate", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["tenant"] == "cli-t" and created["collections"] == ["door", "lobby"]
    assert created["scopes"] == ["detect", "recognize"] and created["name"] == "gate"
    key, key_id = created["key"], created["key_id"]
    assert client.get("/api/models", headers=bearer(key)).status_code == 200

    assert main(["keys", "list", "--tenant", "cli-t", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [k["key_id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert main(["keys", "list"]) == 0
    assert key_id in capsys.readouterr().out

    assert main(["keys", "revoke", key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    deadline = time.monotonic() + 5
    while client.get("/api/models", headers=bearer(key)).status_code != 401:
        assert time.monotonic() < deadline, "revocation did not reach the service"
        time.sleep(0.1)
    assert main(["keys", "list", "--tenant", "cli-t", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"][0]["status"] == "revoked"

    assert main(["keys", "create", "--scopes", "detect,root"]) == 1
    assert "invalid_scope" in capsys.readouterr().err
    assert main(["keys", "create", "--scopes", "detect", "--expires", "2001-01-01"]) == 1
    assert main(["keys", "revoke", "ffffffffffff"]) == 1


def test_cli_creates_and_migrates_a_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FACEREC_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    monkeypatch.chdir(tmp_path)
    assert main(["keys", "create", "--scopes", "admin", "--expires", "30d", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["tenant"] == "default" and created["expires_at"] is not None
    assert (tmp_path / "new.db").exists()


def test_a_full_inference_queue_refuses_before_reading_the_body(client: TestClient) -> None:
    executor = _state(client).executor
    key = make_key(client, "detect")
    saved = executor._pending
    executor._pending = executor._max_pending
    try:
        response = client.post(
            "/api/face-detection/detect", headers=bearer(key), json={"image": "x" * 1_000_000}
        )
        assert response.status_code == 429 and response.json()["error"]["code"] == "overloaded"
        assert client.get("/api/models", headers=bearer(key)).status_code == 200  # no inference
    finally:
        executor._pending = saved
