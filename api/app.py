"""The Falcon application: `create_app(deps)` wires it; only `get_app()` reads the environment."""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import falcon

from api.core_client import CoreClient
from api.errors import install_error_handling
from api.middleware import JSON_UTF8, CallIdentity
from api.resources.common import RecordResource, StatusResource, VersionInfo, VersionResource


def create_app(core: CoreClient, version: VersionInfo, *, sim: bool = False) -> falcon.App:
    app = falcon.App(media_type=JSON_UTF8, middleware=[CallIdentity()])
    app.req_options.strip_url_path_trailing_slash = True
    install_error_handling(app, core)
    app.add_route("/api/common/v1/Status", StatusResource(core))
    app.add_route("/api/common/v1/Version", VersionResource(core, version))
    app.add_route("/api/common/v1/Record", RecordResource(core))
    return app


def installed_version() -> str:
    try:
        return metadata.version("nhi-console")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def get_app() -> falcon.App:
    """The WSGI app as gunicorn loads it, configured by the supervisor through the environment."""
    endpoint = os.environ["NHI_CONSOLE_BROKER"]
    timeout = float(os.environ.get("NHI_CONSOLE_REQUEST_TIMEOUT", "5"))
    location = os.environ.get("NHI_CONSOLE_LOCATION") or str(Path(sys.executable).with_name("nhi-console"))
    core = CoreClient(endpoint, timeout=timeout)
    return create_app(
        core,
        VersionInfo(file_version=installed_version(), location=location),
        sim=os.environ.get("NHI_CONSOLE_SIM") == "1",
    )
