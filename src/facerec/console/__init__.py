"""The web console's static files (HTML, CSS, JavaScript modules, the i18n table).

Served by :mod:`facerec.api.routes.console` at ``/console``; every file is named here, so each
route is an exact path (no wildcard reaches the package directory) and
:data:`facerec.api.auth.ROUTE_SCOPES` can list them as open: the page holds no data, it signs in
with an API key that it sends on every API call.
"""

from __future__ import annotations

PREFIX = "/console"

# File name -> media type. ``index.html`` is served at ``/console`` and ``/console/``.
ASSETS: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "i18n.js": "text/javascript; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "pages.js": "text/javascript; charset=utf-8",
    "vision.js": "text/javascript; charset=utf-8",
    "health.js": "text/javascript; charset=utf-8",
}


def asset_path(name: str) -> str:
    return PREFIX if name == "index.html" else f"{PREFIX}/{name}"


# Every URL path the console answers (the index twice: with and without the trailing slash).
CONSOLE_PATHS: tuple[str, ...] = (
    *(asset_path(name) for name in ASSETS),
    f"{PREFIX}/",
)
