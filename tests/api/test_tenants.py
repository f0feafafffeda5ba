"""Tenant isolation through HTTP: every route is tried with a key of another tenant, which can
never read, search, enumerate, modify or erase anything of the first tenant, nor learn that it
exists (the same 404 as for a thing nobody has). The walk is checked against the app's routes,
so a new route cannot be left out."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from facerec.api.auth import ROUTE_SCOPES
from facerec.app import create_app
from facerec.auth.keys import KeySpec
from facerec.console import CONSOLE_PATHS
from facerec.state import AppState
from tests.api.conftest import b64, make_settings, wait_ready
from tests.api.test_photos import walk_photo_routes
from tests.images import astronaut_png, grace_hopper_jpeg

API = "/api/face-recognition"
ALL = frozenset({"detect", "recognize", "enroll", "manage", "admin"})


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("tenants"), auth={"required": True})
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def key_for(client: TestClient, tenant: str, collections: frozenset[str] | None = None) -> str:
    state: AppState = client.app.state.facerec  # type: ignore[attr-defined]
    assert state.auth is not None
    spec = KeySpec(tenant=tenant, scopes=ALL, collections=collections)
    text, _ = client.portal.call(functools.partial(state.auth.keys.create, spec, created_by="t"))
    return text


class As:
    """Requests with one key."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client = client
        self.headers = {"X-API-Key": key}

    def __getattr__(self, method: str) -> Callable[..., Response]:
        call = getattr(self.client, method)
        return functools.partial(call, headers=self.headers)


def ok(response: Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def not_found(response: Response, code: str) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == code


def test_another_tenant_sees_nothing_and_changes_nothing(client: TestClient) -> None:
    alice, bob = As(client, key_for(client, "acme")), As(client, key_for(client, "globex"))
    grace = b64(grace_hopper_jpeg())
    # Tenant acme: a collection, a person with a chosen id, an employee, an Idempotency-Key.
    ok(alice.post(API + "/collections", json={"name": "staff"}))
    enrolled = ok(
        alice.post(
            API + "/add-face",
            json={"person_name": "Grace", "person_id": "p1", "face_image_base64": grace},
            headers={**alice.headers, "Idempotency-Key": "same-key"},
        )
    )
    assert enrolled["person_id"] == "p1" and enrolled["person"]["collection"] == "default"
    face_id = enrolled["face_id"]
    employee = ok(
        alice.post(
            API + "/register-multiple",
            json={
                "full_name": "Grace",
                "employee_id": "E-1",
                "images": [grace],
                "collection": "staff",
            },
        )
    )
    employee_id = employee["person"]["person_id"]
    found = ok(alice.post(API + "/recognize", json={"face_image_base64": grace}))
    assert found["best_match"]["person_id"] == "p1"
    visited: set[tuple[str, str]] = set()

    def walk(method: str, template: str) -> None:
        visited.add((method, template))

    # Tenant globex walks every route with acme's names and ids.
    walk("GET", API + "/persons")
    assert ok(bob.get(API + "/persons"))["persons"] == []
    assert ok(bob.get(API + "/persons", params={"employee_id": "E-1"}))["persons"] == []
    not_found(bob.get(API + "/persons", params={"collection": "staff"}), "collection_not_found")
    walk("GET", API + "/persons/{person_id}")
    for person in ("p1", employee_id):
        not_found(bob.get(f"{API}/persons/{person}"), "person_not_found")
    walk("PATCH", API + "/persons/{person_id}")
    not_found(bob.patch(f"{API}/persons/p1", json={"person_name": "X"}), "person_not_found")
    walk("DELETE", API + "/persons/{person_id}/faces/{face_id}")
    not_found(bob.delete(f"{API}/persons/p1/faces/{face_id}"), "person_not_found")
    walk("DELETE", API + "/persons/{person_id}")
    not_found(bob.delete(f"{API}/persons/p1"), "person_not_found")
    walk("GET", API + "/collections")
    names = [c["name"] for c in ok(bob.get(API + "/collections"))["collections"]]
    assert names == ["default"]
    walk("DELETE", API + "/collections/{name}")
    not_found(
        bob.delete(f"{API}/collections/staff", params={"force": True}), "collection_not_found"
    )
    walk("POST", API + "/recognize")
    for gallery in (None, "default"):
        answer = ok(
            bob.post(API + "/recognize", json={"face_image_base64": grace, "gallery": gallery})
        )
        assert answer["matches"] == [] and answer["unknown"] is True
    not_found(
        bob.post(API + "/recognize", json={"face_image_base64": grace, "gallery": "staff"}),
        "collection_not_found",
    )
    for path in ("/recognize-all", "/recognize-all-upload"):
        walk("POST", API + path)
    everyone = ok(bob.post(API + "/recognize-all", json={"face_image_base64": grace}))
    assert everyone["faces"] and all(f["candidates"] == [] for f in everyone["faces"])
    not_found(
        bob.post(API + "/recognize-all", json={"face_image_base64": grace, "collection": "staff"}),
        "collection_not_found",
    )
    everyone = ok(
        bob.post(API + "/recognize-all-upload", files={"file": ("g.jpg", grace_hopper_jpeg())})
    )
    assert all(f["best_match"] is None for f in everyone["faces"])
    walk("POST", API + "/recognize-upload")
    upload = bob.post(
        API + "/recognize-upload", files={"file": ("g.jpg", grace_hopper_jpeg())}, data={}
    )
    assert ok(upload)["matches"] == []
    walk_photo_routes(alice, bob, walk, grace)  # stored photos and suggestions
    # Writing with acme's ids creates globex's own things, and touches nothing of acme's.
    walk("POST", API + "/add-face")
    own = ok(
        bob.post(
            API + "/add-face",
            json={
                "person_name": "Other",
                "person_id": "p1",
                "face_image_base64": b64(astronaut_png()),
            },
            headers={**bob.headers, "Idempotency-Key": "same-key"},
        )
    )
    assert own["person_id"] == "p1" and own["person_name"] == "Other"
    assert own.get("warnings") == []  # no duplicate warning naming acme's person
    walk("POST", API + "/add-face-upload")
    ok(
        bob.post(
            API + "/add-face-upload",
            files={"file": ("a.png", astronaut_png())},
            data={"person_name": "Other", "person_id": "p1"},
        )
    )
    walk("POST", API + "/collections")
    ok(bob.post(API + "/collections", json={"name": "staff"}))  # the same name is free here
    walk("POST", API + "/register-multiple")
    ok(
        bob.post(
            API + "/register-multiple",
            json={
                "full_name": "X",
                "employee_id": "E-1",
                "images": [b64(astronaut_png())],
                "collection": "staff",
            },
        )
    )
    walk("POST", API + "/enroll-batch")
    batch = ok(
        bob.post(
            API + "/enroll-batch",
            json={
                "collection": "staff",
                "persons": [
                    {
                        "person_name": "Y",
                        "person_id": employee_id,
                        "images": [b64(astronaut_png())],
                    }
                ],
            },
        )
    )
    # acme's person id is free in globex: the person is created in globex's own collection
    assert batch["results"][0]["status"] == "created", batch["results"]
    walk("POST", API + "/enroll-batch-upload")
    upload_batch = ok(
        bob.post(
            API + "/enroll-batch-upload",
            files={"files": ("a.png", astronaut_png())},
            data={
                "collection": "staff",
                "persons": json.dumps(
                    [{"person_name": "Z", "person_id": employee_id, "files": [0]}]
                ),
            },
        )
    )
    # p1 here is globex's own person (add-face above), never acme's
    assert upload_batch["results"][0]["status"] == "added", upload_batch["results"]
    # Routes without gallery data answer for the caller alone.
    for method, path in (
        ("POST", API + "/compare"),
        ("POST", API + "/compare-upload"),
        ("POST", "/api/face-detection/detect"),
        ("POST", "/api/face-detection/detect-upload"),
        ("POST", "/api/face-antispoofing/detect"),
        ("POST", "/api/face-antispoofing/detect-upload"),
        ("GET", "/api/models"),
        ("GET", "/metrics"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/ws/recognize"),  # a WebSocket: tenant scoping tested in test_streams.py
        *(("GET", path) for path in CONSOLE_PATHS),  # the console's static files
    ):
        walk(method, path)
    assert bob.get("/ws/recognize").status_code == 426
    assert ok(
        bob.post(API + "/compare", json={"face1_image_base64": grace, "face2_image_base64": grace})
    )
    # Admin routes: globex's admin sees only globex's keys and audit events.
    walk("GET", "/api/admin/keys")
    keys = ok(bob.get("/api/admin/keys"))
    assert {k["tenant"] for k in keys["keys"]} == {"globex"}
    walk("GET", "/api/admin/audit")
    events = ok(bob.get("/api/admin/audit"))
    assert events["events"] and {e["tenant"] for e in events["events"]} == {"globex"}
    acme_keys = ok(alice.get("/api/admin/keys"))["keys"]
    walk("DELETE", "/api/admin/keys/{key_id}")
    assert bob.delete(f"/api/admin/keys/{acme_keys[0]['key_id']}").status_code == 404
    walk("POST", "/api/admin/keys")
    refused = bob.post("/api/admin/keys", json={"tenant": "acme", "scopes": ["detect"]})
    assert refused.status_code in (403, 404)

    # Migrations: globex's admin lists none of acme's and gets 404 for any id.
    walk("GET", "/api/admin/migrations")
    assert ok(bob.get("/api/admin/migrations"))["migrations"] == []
    walk("POST", "/api/admin/migrations")
    refused = bob.post("/api/admin/migrations", json={"collection": "staff", "to_model": "nope"})
    assert refused.status_code in (400, 404)
    for suffix, method in (("", "GET"), ("/cut-over", "POST"), ("/rollback", "POST")):
        walk(method, "/api/admin/migrations/{migration_id}" + suffix)
        assert bob.request(method, "/api/admin/migrations/m-1" + suffix).status_code == 404
    walk("POST", "/api/admin/migrations/{migration_id}/finish")
    assert bob.post("/api/admin/migrations/m-1/finish").status_code == 404

    # acme's things are all there, unchanged.
    person = ok(alice.get(f"{API}/persons/p1"))
    assert person["person"]["person_name"] == "Grace" and person["person"]["face_count"] == 1
    again = ok(alice.post(API + "/recognize", json={"face_image_base64": grace}))
    assert again["best_match"]["person_id"] == "p1"
    assert [m["person_name"] for m in again["matches"]].count("Other") == 0
    staff = ok(alice.get(API + "/persons", params={"collection": "staff"}))["persons"]
    assert [p["employee_id"] for p in staff] == ["E-1"] and staff[0]["person_name"] == "Grace"
    events = ok(alice.get("/api/admin/audit"))["events"]
    assert {e["action"] for e in events} >= {"face.enroll", "person.register", "collection.create"}
    # Every route of the app was walked.
    assert visited == set(ROUTE_SCOPES), sorted(set(ROUTE_SCOPES) ^ visited)


def test_a_key_limited_to_collections(client: TestClient) -> None:
    admin = As(client, key_for(client, "initech"))
    ok(admin.post(API + "/collections", json={"name": "door"}))
    door = As(client, key_for(client, "initech", frozenset({"door"})))
    grace = b64(grace_hopper_jpeg())
    ok(
        door.post(
            API + "/add-face",
            json={"person_name": "G", "face_image_base64": grace, "collection": "door"},
        )
    )
    refused = door.post(API + "/add-face", json={"person_name": "G", "face_image_base64": grace})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "collection_forbidden"
    listed = ok(door.get(API + "/persons"))["persons"]
    assert {p["collection"] for p in listed} == {"door"}
    names = [c["name"] for c in ok(door.get(API + "/collections"))["collections"]]
    assert names == ["door"]
