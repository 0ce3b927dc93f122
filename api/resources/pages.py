"""The console's web pages: Swagger UI (`/api/swagger/index.html`), the status lights (`/console/`) and, on the
bench only, an example page for HIS developers (`/console/examples/`).

Plain files served from this machine (clinics and CI have no internet): our own
HTML, CSS and JavaScript under `api/pages/`, and Swagger UI's built files,
fetched once at install time (deploy/swagger_ui_assets.py). Pages are not API
operations: they are neither in the OpenAPI document nor in the call record,
but the same Host and Origin rules apply to them as to every request.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import falcon

PAGES = Path(__file__).resolve().parent.parent / "pages"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Everything from this console, no inline script (Swagger UI sets inline styles, so those are allowed)."""


def swagger_ui_directory() -> Path:
    """Where deploy/swagger_ui_assets.py puts Swagger UI: `<sys.prefix>/share/nhi-console/swagger-ui`, beside the
    installed console, or NHI_CONSOLE_SWAGGER_UI."""
    configured = os.environ.get("NHI_CONSOLE_SWAGGER_UI")
    return Path(configured) if configured else Path(sys.prefix) / "share" / "nhi-console" / "swagger-ui"


class PageFiles:
    """A fixed set of files by name: nothing outside the set is ever read, whatever the path says."""

    in_document = False  # a page, not an API operation
    recorded = False

    def __init__(self, files: dict[str, Path], *, missing_hint: str = "") -> None:
        self._files = files
        self._missing_hint = missing_hint

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = "index.html") -> None:
        path = self._files.get(name)
        if path is None:
            raise falcon.HTTPNotFound(description="no such page")
        try:
            content = path.read_bytes()
        except OSError:
            raise falcon.HTTPServiceUnavailable(
                description=f"{name} is not installed. {self._missing_hint}".strip()
            ) from None
        resp.content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        resp.data = content
        resp.set_header("Cache-Control", "no-cache")  # nosniff: api/middleware.py PrivateAnswers
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)


class RedirectTo:
    """`/api/swagger` to Swagger UI's page (the spec's address)."""

    in_document = False
    recorded = False

    def __init__(self, location: str) -> None:
        self._location = location

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPFound(self._location)


def mount_pages(app: falcon.App, swagger_ui: Path) -> None:
    swagger = PageFiles(
        {
            "index.html": PAGES / "swagger" / "index.html",
            "swagger-initializer.js": PAGES / "swagger" / "swagger-initializer.js",
            **{name: swagger_ui / name for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")},
        },
        missing_hint="Swagger UI's files are fetched at install time: python -m deploy.swagger_ui_assets",
    )
    app.add_route("/api/swagger/{name}", swagger)
    app.add_route("/api/swagger", RedirectTo("/api/swagger/index.html"))
    console = PageFiles({name: PAGES / "console" / name for name in ("index.html", "console.css", "console.js")})
    app.add_route("/console", console)  # and `/console/`: the app strips a trailing slash; the page links absolutely
    app.add_route("/console/{name}", console)


EXAMPLE_FILES = ("index.html", "register.js", "register.css")


def mount_example_pages(app: falcon.App) -> None:
    """The bench's example page for HIS developers (`api/pages/examples/`): the console's half of a registration
    from a browser. Mounted by the bench's control API (sim/control_api.py), so only under `serve --sim`: it opens a
    session and reads the card, which a real installation should not offer as a page. Its links are relative (it
    is also served by any web server on localhost), so `/console/examples` and `/console/examples/` (one path once
    the trailing slash is stripped) redirect to the page's full address, from which they resolve."""
    app.add_route("/console/examples", RedirectTo("/console/examples/index.html"))
    app.add_route("/console/examples/{name}", PageFiles({name: PAGES / "examples" / name for name in EXAMPLE_FILES}))
