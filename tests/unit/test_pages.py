"""The console's pages (api/resources/pages.py) and the install step that fetches Swagger UI's files
(deploy/swagger_ui_assets.py): only the listed files are ever served or unpacked, and a changed tarball is refused."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from pathlib import Path

import falcon.testing
import pytest

from api.app import create_app
from api.resources.common import VersionInfo
from api.resources.pages import EXAMPLE_FILES, mount_example_pages
from deploy import swagger_ui_assets
from tests.unit.test_api import FakeCore

HOST = {"Host": "localhost:5066"}


def client(swagger_ui: Path) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(
        create_app(FakeCore(), VersionInfo("1", "/x"), swagger_ui=swagger_ui),  # type: ignore[arg-type]  # a stand-in core
        headers=HOST,
    )


def test_the_console_page_and_its_files(tmp_path: Path) -> None:
    pages = client(tmp_path)
    for path in ("/console", "/console/", "/console/index.html"):
        answer = pages.simulate_get(path)
        assert answer.status_code == 200 and answer.headers["content-type"] == "text/html; charset=utf-8"
        assert "/console/console.js" in answer.text
    script = pages.simulate_get("/console/console.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "script-src 'self'" in script.headers["content-security-policy"]
    for outside in ("/console/../app.py", "/console/%2e%2e%2fapp.py", "/console/nothing.js", "/console/pages.py"):
        assert pages.simulate_get(outside).status_code == 404


def test_the_example_page_is_the_benchs_alone(tmp_path: Path) -> None:
    """`/console/examples/` opens a session and reads the card from a browser: a bench page, mounted by the bench's
    control API (sim/control_api.py) and by nothing in a real installation."""
    plain = client(tmp_path)
    for path in ("/console/examples", "/console/examples/", "/console/examples/index.html"):
        assert plain.simulate_get(path).status_code == 404
    bench = falcon.testing.TestClient(
        create_app(
            FakeCore(),  # type: ignore[arg-type]  # a stand-in core
            VersionInfo("1", "/x"),
            extra_routes=lambda app, core: mount_example_pages(app),
            swagger_ui=tmp_path,
        ),
        headers=HOST,
    )
    for path in ("/console/examples", "/console/examples/"):  # to the page's own address: its links are relative
        assert bench.simulate_get(path).headers["location"] == "/console/examples/index.html"
    page = bench.simulate_get("/console/examples/index.html")
    assert page.status_code == 200 and '<script src="register.js" defer>' in page.text and "SIMULATION" in page.text
    for name in EXAMPLE_FILES:
        answer = bench.simulate_get(f"/console/examples/{name}")
        assert answer.status_code == 200 and "script-src 'self'" in answer.headers["content-security-policy"]
    for outside in ("/console/examples/../../app.py", "/console/examples/%2e%2e%2fapp.py", "/console/examples/x.js"):
        assert bench.simulate_get(outside).status_code == 404
    assert "/console/console.js" in bench.simulate_get("/console/").text  # the status lights are still there


def test_swagger_ui_is_served_from_the_installed_files_or_says_how_to_install_them(tmp_path: Path) -> None:
    pages = client(tmp_path)
    assert pages.simulate_get("/api/swagger/index.html").status_code == 200
    missing = pages.simulate_get("/api/swagger/swagger-ui-bundle.js")
    assert missing.status_code == 503 and "python -m deploy.swagger_ui_assets" in missing.json["message"]
    (tmp_path / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = function () {};")
    assert pages.simulate_get("/api/swagger/swagger-ui-bundle.js").text.startswith("window.SwaggerUIBundle")
    assert pages.simulate_get("/api/swagger").headers["location"] == "/api/swagger/index.html"
    assert pages.simulate_get("/api/swagger/LICENSE").status_code == 404  # fetched, but not a page's file


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def test_only_the_pinned_tarball_is_taken_and_only_its_listed_files_unpacked(tmp_path: Path) -> None:
    files = {f"package/{name}": name.encode() for name in swagger_ui_assets.FILES}
    files["../../escaped.js"] = b"outside"
    files["package/swagger-ui-es-bundle.js"] = b"not needed"
    data = tarball(files)
    swagger_ui_assets.verify(data, integrity(data))
    with pytest.raises(swagger_ui_assets.IntegrityMismatch):
        swagger_ui_assets.verify(data + b"\0", integrity(data))
    target = tmp_path / "share" / "swagger-ui"
    swagger_ui_assets.unpack(data, target)
    assert sorted(path.name for path in target.iterdir()) == sorted([*swagger_ui_assets.FILES, "VERSION"])
    assert swagger_ui_assets.installed(target)
    assert not (tmp_path / "escaped.js").exists() and not (tmp_path.parent / "escaped.js").exists()
    swagger_ui_assets.unpack(data, target)  # again, over the old: still exactly the listed files
    assert len(list(target.iterdir())) == len(swagger_ui_assets.FILES) + 1


def test_the_pinned_integrity_is_the_registrys_form() -> None:
    algorithm, _, digest = swagger_ui_assets.INTEGRITY.partition("-")
    assert algorithm == "sha512" and len(base64.b64decode(digest)) == 64
