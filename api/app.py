"""The Falcon application: `create_app(deps)` wires it; only `get_app()` reads the environment."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import falcon

from api.callers import LOCAL_HOSTS, CallerGate
from api.command_route import command_resource
from api.core_client import CoreClient
from api.errors import install_error_handling
from api.middleware import JSON_UTF8, CallIdentity, PrivateAnswers
from api.openapi import build_document
from api.operations import Operation
from api.refusals import RefusalLog
from api.resources import health_card as hc
from api.resources import session, settings
from api.resources import staff_card as hpc
from api.resources.common import STATUS, RecordResource, VersionInfo, VersionResource
from api.resources.events import EventStreamResource
from api.resources.pages import mount_pages, swagger_ui_directory
from api.resources.swagger import OpenApiDocumentResource
from contract.settings import ApiSettings

Mount = Callable[[falcon.App, CoreClient], None]


@dataclass(frozen=True)
class StreamSettings:
    heartbeat_seconds: float = ApiSettings.stream_heartbeat_seconds
    max_streams: int = ApiSettings.max_streams
    """Live streams per API process: each holds one of its threads (gunicorn_conf.threads)."""


def create_app(
    core: CoreClient,
    version: VersionInfo,
    *,
    extra_routes: Mount | None = None,
    local_hosts: frozenset[str] = LOCAL_HOSTS,
    stream: StreamSettings | None = None,
    swagger_ui: Path | None = None,
) -> falcon.App:
    """`local_hosts`: the names `Host` may carry (this machine's; the address `serve --host` binds, if another)."""
    stream = stream or StreamSettings()

    def allowed_hosts() -> list[str]:
        return list(core.call("ListCorsHosts").body.get("cors", []))

    refusals = RefusalLog(core)
    middleware: list[Any] = [
        CallerGate(allowed_hosts, local_hosts, refusals),
        CallIdentity(refusals),
        PrivateAnswers(),
    ]  # Falcon's stubs take Protocols
    app = falcon.App(media_type=JSON_UTF8, middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = True  # `take=` is a malformed take (400), not a missing one
    install_error_handling(app, core)

    def route(path: str, **operations: Operation) -> None:
        app.add_route(path, command_resource(core, **operations))

    route("/api/common/v1/Status", get=STATUS)
    app.add_route("/api/common/v1/Version", VersionResource(core, version))
    app.add_route("/api/common/v1/Record", RecordResource(core))
    route("/api/common/v1/Name", get=session.NAME)
    route("/api/common/v1/Initial", post=session.INITIAL)
    route("/api/common/v1/Finalize", post=session.FINALIZE)
    route("/api/common/v1/ServerDateTime", get=session.SERVER_DATE_TIME)
    route("/api/sam/v1/Basic", get=session.SAM_BASIC)
    route("/api/sam/v1/Verification", post=session.SAM_VERIFICATION)
    route("/api/sam/v1/Logout", delete=session.SAM_LOGOUT)
    route("/api/sam/v1/Signature", post=session.SAM_SIGNATURE)
    route("/api/hc/v1/Basic", get=hc.HC_BASIC)
    route("/api/hc/v1/Logout", delete=hc.HC_LOGOUT)
    route("/api/hc/v1/Pin", get=hc.HC_PIN_GET, post=hc.HC_PIN_VERIFY, put=hc.HC_PIN_SET, delete=hc.HC_PIN_REMOVE)
    route("/api/hc/v1/Signature/Hc", post=hc.HC_SIGNATURE)
    route("/api/hc/v1/Signature/HpcHc", post=hc.HPC_HC_SIGNATURE)
    route("/api/hc/v1/Verification/VirtualHc", post=hc.VIRTUAL_HC_VERIFICATION)
    route("/api/hc/v1/VirtualHc/ReadBasic", post=hc.VIRTUAL_HC_READ_BASIC)
    route("/api/hc/v1/VirtualHc/Export", post=hc.VIRTUAL_HC_EXPORT)
    route("/api/hc/v1/VirtualHc/Import", post=hc.VIRTUAL_HC_IMPORT)
    route("/api/hc/v1/RealHc/Update", post=hc.REAL_HC_UPDATE)
    route("/api/hpc/v1/Basic", get=hpc.HPC_BASIC)
    route("/api/hpc/v1/Logout", delete=hpc.HPC_LOGOUT)
    route("/api/hpc/v1/Pin", post=hpc.HPC_PIN_CHANGE, put=hpc.HPC_PIN_UNBLOCK)
    route("/api/hpc/v1/Signature", post=hpc.HPC_SIGNATURE)
    route("/api/hpc/v1/Verification/Hpc", post=hpc.HPC_VERIFICATION)
    route("/api/hpc/v1/Verification/MobiliHca", post=hpc.MOBILE_HCA)
    route("/api/settings/v1/PcscReader/Readers", get=settings.READERS)
    route("/api/settings/v1/PcscReader/AutoDetected", post=settings.AUTO_DETECT)
    route(
        "/api/settings/v1/PcscReader/Default",
        get=settings.DEFAULT_READER,
        post=settings.SET_DEFAULT_READER,
        delete=settings.CLEAR_DEFAULT_READER,
    )
    route("/api/settings/v1/CloudSam", get=settings.CLOUD_SAMS, post=settings.IMPORT_CLOUD_SAM)
    route("/api/settings/v1/CloudSam/{sam_id}", delete=settings.REMOVE_CLOUD_SAM)
    route("/api/settings/v1/Cors", get=settings.CORS_HOSTS, post=settings.ALLOW_CORS_HOST)
    route("/api/settings/v1/Cors/{host}", delete=settings.REMOVE_CORS_HOST)
    app.add_route(
        "/api/events/v1/Stream",
        EventStreamResource(core, heartbeat_seconds=stream.heartbeat_seconds, max_streams=stream.max_streams),
    )
    if extra_routes is not None:
        extra_routes(app, core)
    mount_pages(app, swagger_ui or swagger_ui_directory())
    app.add_route(
        "/api/swagger/v1/swagger.json",
        OpenApiDocumentResource(
            lambda: build_document(app, title="nhi-console", version=version.file_version, description=API_DESCRIPTION)
        ),
    )
    return app


API_DESCRIPTION = (
    "An open implementation of the NHI card-reader control software 6.0 console's REST API "
    "(健保卡讀卡機控制軟體 6.0 主控台). Business outcomes are HTTP 200 with the spec's statusCode; "
    "HTTP errors are for requests the console refused before running anything. "
    "The BENCH routes exist only under `nhi-console serve --sim`: "
    "the cards, SAMs and data center behind them are simulated."
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
    """The WSGI app as gunicorn loads it, configured by the settings file `serve` wrote (NHI_CONSOLE_SETTINGS)."""
    from contract.settings import SETTINGS_ENV, Settings

    settings = Settings.read(Path(os.environ[SETTINGS_ENV]))
    core = CoreClient(settings.locations.api_endpoint, timeout=settings.api.request_timeout)
    bench = settings.bench
    if bench is not None:
        # The bench's control API (sim/control_api.py) still finds the DC simulator and the bench NHI reader through
        # these variables: set here, in this process, from the settings file, not passed by the supervisor.
        os.environ["NHI_CONSOLE_SIM_DC_URL"] = settings.data_center.url or ""
        os.environ["NHI_CONSOLE_SIM_DC_CA"] = str(settings.data_center.ca or "")
        os.environ["NHI_CONSOLE_SIM_NHI_CONTROL"] = bench.nhi_control
    also_local = {settings.api.host.strip().lower()} if settings.api.host and settings.api.host.strip() else set()
    return create_app(
        core,
        VersionInfo(file_version=installed_version(), location=settings.locations.console_command),
        extra_routes=load_mount(bench.control_api) if bench is not None else None,
        local_hosts=LOCAL_HOSTS | frozenset(also_local),
        stream=StreamSettings(
            heartbeat_seconds=settings.api.stream_heartbeat_seconds,
            max_streams=settings.api.max_streams,
        ),
    )
