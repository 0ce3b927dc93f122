"""`python -m deploy.swagger_ui_assets`: put Swagger UI's files where the console serves them from.

Swagger UI is served from local files (clinics and CI have no internet at run
time), and our OpenAPI document is 3.1, which needs Swagger UI 5. Its official
distribution of built files is the npm package `swagger-ui-dist`; the Python
packages that bundle it are either stuck at Swagger UI 4 (`swagger-ui-bundle`)
or need Django (`drf-spectacular-sidecar`). So `make` fetches the pinned
tarball from the npm registry once, checks it against the registry's pinned
SHA-512, and unpacks the few files the page needs into
`<venv>/share/nhi-console/swagger-ui/`. No Node.js or npm is needed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from api.resources.pages import swagger_ui_directory

VERSION = "5.35.0"
INTEGRITY = "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ=="
"""The npm registry's `dist.integrity` of swagger-ui-dist@VERSION: a changed tarball is refused."""
TARBALL = f"https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-{VERSION}.tgz"
FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE")
"""What `/api/swagger/index.html` loads (and the licence that comes with it)."""


def installed(directory: Path) -> bool:
    return (
        (directory / "VERSION").is_file()
        and (directory / "VERSION").read_text().strip() == VERSION
        and all((directory / name).is_file() for name in FILES)
    )


class IntegrityMismatch(RuntimeError):
    pass


def verify(tarball: bytes, integrity: str = INTEGRITY) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode("ascii")
    if digest != expected:
        raise IntegrityMismatch(f"swagger-ui-dist {VERSION}: the tarball's {algorithm} is not the pinned one")


def unpack(tarball: bytes, directory: Path) -> None:
    """Only the listed files, read by name (never extracted by path), then moved into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".swagger-ui-", dir=directory.parent))
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in FILES:
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise IntegrityMismatch(f"swagger-ui-dist {VERSION} has no {name}")
            (staging / name).write_bytes(member.read())
    (staging / "VERSION").write_text(VERSION + "\n")
    staging.chmod(0o755)  # mkdtemp makes it 0700; the service's user must read it
    shutil.rmtree(directory, ignore_errors=True)  # an older version's files
    staging.rename(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.swagger_ui_assets", description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, default=swagger_ui_directory())
    parser.add_argument("--tarball", type=Path, help="a swagger-ui-dist tarball already downloaded (offline installs)")
    args = parser.parse_args(argv)
    if installed(args.directory):
        return 0
    if args.tarball is not None:
        tarball = args.tarball.read_bytes()
    else:
        with urllib.request.urlopen(TARBALL, timeout=60) as response:
            tarball = response.read()
    verify(tarball)
    unpack(tarball, args.directory)
    print(f"Swagger UI {VERSION} in {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
