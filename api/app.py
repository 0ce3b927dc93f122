"""The Falcon application: `create_app(deps)` wires it; only `get_app()` reads the environment."""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import falcon

from api.callers import LOCAL_HOSTS, CallerGate
from api.core_client import CoreClient
from api.errors import install_error_handling
from api.middleware import JSON_UTF8, CallIdentity
from api.openapi import build_document
from api.resources.common import RecordResource, StatusResource, VersionInfo, VersionResource
from api.resources.health_card import (
    HcBasicResource,
    HcLogoutResource,
    HcPinResource,
    HcSignatureResource,
    HpcHcSignatureResource,
    RealHcUpdateResource,
    VirtualHcExportResource,
    VirtualHcImportResource,
    VirtualHcReadBasicResource,
    VirtualHcVerificationResource,
)
from api.resources.staff_card import (
    HpcBasicResource,
    HpcLogoutResource,
    HpcPinResource,
    HpcSignatureResource,
    HpcVerificationResource,
    MobileHcaResource,
)
from api.resources.session import (
    FinalizeResource,
    InitialResource,
    NameResource,
    SamBasicResource,
    SamLogoutResource,
    SamSignatureResource,
    SamVerificationResource,
    ServerDateTimeResource,
)
from api.resources.settings import (
    AutoDetectedResource,
    CloudSamResource,
    CloudSamsResource,
    CorsHostResource,
    CorsResource,
    DefaultReaderResource,
    ReadersResource,
)
from api.resources.events import EventStreamResource
from api.resources.pages import mount_pages, swagger_ui_directory
from api.resources.swagger import OpenApiDocumentResource

Mount = Callable[[falcon.App, CoreClient], None]


@dataclass(frozen=True)
class StreamSettings:
    heartbeat_seconds: float = 15.0
    max_streams: int = 8
    """Live streams per API process: each holds one of its threads (gunicorn_conf.threads)."""


def create_app(core: CoreClient, version: VersionInfo, *, extra_routes: Mount | None = None,
               local_hosts: frozenset[str] = LOCAL_HOSTS, stream: StreamSettings | None = None,
               swagger_ui: Path | None = None) -> falcon.App:
    """`local_hosts`: the names `Host` may carry (this machine's; the address `serve --host` binds, if another)."""
    stream = stream or StreamSettings()

    def allowed_hosts() -> list[str]:
        return list(core.call("ListCorsHosts").body.get("cors", []))

    app = falcon.App(media_type=JSON_UTF8, middleware=[CallerGate(allowed_hosts, local_hosts), CallIdentity()])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = True  # `take=` is a malformed take (400), not a missing one
    install_error_handling(app, core)
    app.add_route("/api/common/v1/Status", StatusResource(core))
    app.add_route("/api/common/v1/Version", VersionResource(core, version))
    app.add_route("/api/common/v1/Record", RecordResource(core))
    app.add_route("/api/common/v1/Name", NameResource(core))
    app.add_route("/api/common/v1/Initial", InitialResource(core))
    app.add_route("/api/common/v1/Finalize", FinalizeResource(core))
    app.add_route("/api/common/v1/ServerDateTime", ServerDateTimeResource(core))
    app.add_route("/api/sam/v1/Basic", SamBasicResource(core))
    app.add_route("/api/sam/v1/Verification", SamVerificationResource(core))
    app.add_route("/api/sam/v1/Logout", SamLogoutResource(core))
    app.add_route("/api/sam/v1/Signature", SamSignatureResource(core))
    app.add_route("/api/hc/v1/Basic", HcBasicResource(core))
    app.add_route("/api/hc/v1/Logout", HcLogoutResource(core))
    app.add_route("/api/hc/v1/Pin", HcPinResource(core))
    app.add_route("/api/hc/v1/Signature/Hc", HcSignatureResource(core))
    app.add_route("/api/hc/v1/Signature/HpcHc", HpcHcSignatureResource(core))
    app.add_route("/api/hc/v1/Verification/VirtualHc", VirtualHcVerificationResource(core))
    app.add_route("/api/hc/v1/VirtualHc/ReadBasic", VirtualHcReadBasicResource(core))
    app.add_route("/api/hc/v1/VirtualHc/Export", VirtualHcExportResource(core))
    app.add_route("/api/hc/v1/VirtualHc/Import", VirtualHcImportResource(core))
    app.add_route("/api/hc/v1/RealHc/Update", RealHcUpdateResource(core))
    app.add_route("/api/hpc/v1/Basic", HpcBasicResource(core))
    app.add_route("/api/hpc/v1/Logout", HpcLogoutResource(core))
    app.add_route("/api/hpc/v1/Pin", HpcPinResource(core))
    app.add_route("/api/hpc/v1/Signature", HpcSignatureResource(core))
    app.add_route("/api/hpc/v1/Verification/Hpc", HpcVerificationResource(core))
    app.add_route("/api/hpc/v1/Verification/MobiliHca", MobileHcaResource(core))
    app.add_route("/api/settings/v1/PcscReader/Readers", ReadersResource(core))
    app.add_route("/api/settings/v1/PcscReader/AutoDetected", AutoDetectedResource(core))
    app.add_route("/api/settings/v1/PcscReader/Default", DefaultReaderResource(core))
    app.add_route("/api/settings/v1/CloudSam", CloudSamsResource(core))
    app.add_route("/api/settings/v1/CloudSam/{sam_id}", CloudSamResource(core))
    app.add_route("/api/settings/v1/Cors", CorsResource(core))
    app.add_route("/api/settings/v1/Cors/{host}", CorsHostResource(core))
    app.add_route("/api/events/v1/Stream", EventStreamResource(
        core, heartbeat_seconds=stream.heartbeat_seconds, max_streams=stream.max_streams))
    if extra_routes is not None:
        extra_routes(app, core)
    mount_pages(app, swagger_ui or swagger_ui_directory())
    app.add_route("/api/swagger/v1/swagger.json", OpenApiDocumentResource(
        lambda: build_document(app, title="nhi-console", version=version.file_version, description=API_DESCRIPTION)))
    return app


API_DESCRIPTION = (
    "An open implementation of the NHI card-reader control software 6.0 console's REST API "
    "(健保卡讀卡機控制軟體 6.0 主控台). Business outcomes are HTTP 200 with the spec's statusCode; "
    "HTTP errors are for requests the console refused before running anything. "
    "The BENCH routes exist only under `nhi-console serve --sim`: the cards, SAMs and data center behind them are simulated."
)


def load_mount(path: str) -> Mount:
    """`module:function` that adds routes (the bench's control API): wiring by name, no import of sim/."""
    module_name, _, attribute = path.partition(":")
    mount: Mount = getattr(importlib.import_module(module_name), attribute)
    return mount


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
    extra = os.environ.get("NHI_CONSOLE_EXTRA_ROUTES")
    also_local = {name.strip().lower() for name in os.environ.get("NHI_CONSOLE_LOCAL_HOSTS", "").split(",") if name.strip()}
    return create_app(
        core,
        VersionInfo(file_version=installed_version(), location=location),
        extra_routes=load_mount(extra) if extra else None,
        local_hosts=LOCAL_HOSTS | frozenset(also_local),
        stream=StreamSettings(
            heartbeat_seconds=float(os.environ.get("NHI_CONSOLE_STREAM_HEARTBEAT", "15")),
            max_streams=int(os.environ.get("NHI_CONSOLE_MAX_STREAMS", "8")),
        ),
    )
