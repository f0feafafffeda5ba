"""The web console: static files from the package (``facerec/console``), open to everyone.

The files hold no data; the page calls the API with the key the user signs in with. They are
read from the package once and answered with a strict Content-Security-Policy: scripts, styles
and connections only from this origin (WebSockets included), images from the photos the user
drops (``blob:``), nothing from a CDN.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from facerec.console import ASSETS, PREFIX, asset_path

router = APIRouter(tags=["Console"], include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def asset_bytes(name: str) -> bytes:
    return resources.files("facerec.console").joinpath(name).read_bytes()


def _serve(name: str) -> Response:
    return Response(asset_bytes(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


def _add_route(path: str, name: str) -> None:
    async def serve_asset() -> Response:
        return _serve(name)

    serve_asset.__name__ = f"console_{name.replace('.', '_')}"
    router.add_api_route(path, serve_asset, methods=["GET"], response_class=Response)


for _name in ASSETS:
    _add_route(asset_path(_name), _name)
_add_route(f"{PREFIX}/", "index.html")
