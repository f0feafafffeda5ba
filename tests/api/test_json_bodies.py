"""Every route that takes an image in a JSON body parses that body with the offloaded parser
(large bodies off the event loop), and a malformed body still gets the ``invalid_json`` envelope."""

from __future__ import annotations

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from facerec.api.routes import bulk_enrollment, detection, enrollment, liveness, photos, recognition
from facerec.api.uploads import OffloadedJSONRoute
from facerec.app import create_app
from tests.api.conftest import make_settings, wait_ready


def test_image_routes_use_the_offloaded_json_parser() -> None:
    routes = [
        route
        for module in (recognition, enrollment, bulk_enrollment, detection, liveness, photos)
        for route in module.router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    ]
    assert len(routes) >= 12
    assert all(isinstance(route, OffloadedJSONRoute) for route in routes), [
        route.path for route in routes if not isinstance(route, OffloadedJSONRoute)
    ]


def test_malformed_and_large_json_bodies_answer_the_envelope(tmp_path: object) -> None:
    app = create_app(make_settings(tmp_path))
    with TestClient(app) as client:
        wait_ready(client)
        broken = client.post(
            "/api/face-recognition/recognize",
            content=b'{"face_image_base64": "abc"',
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400, broken.text
        assert broken.json()["error"]["code"] == "invalid_json"
        # over the offload size: parsed in a worker thread, then refused as a bad image
        large = client.post(
            "/api/face-recognition/recognize", json={"face_image_base64": "A" * 400_000 + "!"}
        )
        assert large.status_code == 400, large.text
        assert large.json()["error"]["code"] == "invalid_base64"
