from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PCSCD_MODULES
from tests.integration.console import STARTED, RunningConsole, running_console
from tests.pcscd import ForeignPcscd, Pcscd, PcscdUnavailable
from tests.scan_secrets import REMEMBERED_ENV
from tests.typed_secrets import REMEMBERED, files_holding_secrets


@pytest.fixture(scope="session", autouse=True)
def no_pin_or_puk_anywhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole run: no PIN, PUK or token any test typed is in any console's data dir (event log, call
    record, files), in its captured output or in pcscd's log, as text, hex or base64 (contract.md, "Never").

    pytest's own output is checked by tests/run.sh once pytest has exited; the tokens made during the run are
    handed to that check through the file run.sh names (tests/scan_secrets.py), never through the artifacts.
    """
    yield
    handoff = os.environ.get(REMEMBERED_ENV)
    if handoff:
        # Appended, not written: under pytest-xdist every worker process hands over its own tokens.
        with open(handoff, "ab") as remembered:
            remembered.write(b"".join(token + b"\n" for token in REMEMBERED))
    roots = [root for console in STARTED for root in (console.data_dir, console.log_path) if root.exists()]
    roots += sorted(tmp_path_factory.getbasetemp().glob("pcscd*/pcscd.log"))
    leaks = files_holding_secrets(roots)
    if leaks:
        pytest.fail("a PIN, PUK or token reached a console's files:\n" + "\n".join(leaks[:20]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses pcscd must be in a module tests/conftest.py sends to one xdist worker."""
    strays = [
        item.nodeid
        for item in items
        if "pcscd" in getattr(item, "fixturenames", ()) and item.nodeid.split("::", 1)[0] not in PCSCD_MODULES
    ]
    if strays:
        raise pytest.UsageError(f"tests using pcscd outside tests/conftest.py's PCSCD_MODULES: {strays}")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data") as running:
        yield running


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """One real pcscd with vpcd readers for the whole session (the machine has only one pcscd socket).

    Skips where pcscd is not installed, except on CI (`CI` set) or with NHI_REQUIRE_PCSCD=1, where a
    missing pcscd must not pass as a skipped suite. A pcscd we did not start is a failure, never killed.
    """
    daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
    try:
        daemon.start(entries=1)
    except PcscdUnavailable as error:
        if os.environ.get("CI") or os.environ.get("NHI_REQUIRE_PCSCD") == "1":
            pytest.fail(f"PC/SC tests are required here but cannot run: {error}")
        pytest.skip(str(error))
    except ForeignPcscd as error:
        pytest.fail(str(error))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def pcsc_console(pcscd: Pcscd, tmp_path: Path) -> Iterator[RunningConsole]:
    """The console serving pcscd's vpcd readers beside the bench's own (`--sim --pcsc`)."""
    with running_console(tmp_path / "data", "--pcsc", readers=set(pcscd.readers())) as running:
        yield running
