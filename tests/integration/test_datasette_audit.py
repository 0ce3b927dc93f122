"""Datasette, the auditor's browsing UI (docs/audit.md): started as a real process, immutable, on a `log copy`.

The copy is made by the real CLI from a log written through the real store; Datasette serves it with the
generated metadata, and a view read as JSON over HTTP has the rows the view has in the file. The copy's bytes
are the same afterwards: immutable means Datasette never writes it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.paths import console_paths
from deploy.ports import free_loopback_port
from eventlog.audit_views import VIEWS
from eventlog.sqlite_store import SqliteEventStore
from tests.audit_log import write_day
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATASETTE_PORT_BAND = 3
"""A band of ports of its own (deploy/ports.py): never one a test's console is looking for."""


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def answers(url: str) -> bool:
    try:
        get_json(url)
    except OSError:
        return False
    return True


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    store = SqliteEventStore(console_paths(data_dir, sim=False).database)
    write_day(store)
    store.close()
    target = tmp_path / "audit.db"
    script = Path(sys.executable).with_name("nhi-console")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "deploy.cli"]
    done = subprocess.run(
        [*entry, "log", "copy", str(target), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return target


@pytest.fixture
def datasette(copy: Path, tmp_path: Path) -> Iterator[str]:
    port = free_loopback_port(band=DATASETTE_PORT_BAND)
    metadata = copy.with_name("audit.metadata.json")
    program = Path(sys.executable).with_name("datasette")
    with open(tmp_path / "datasette.log", "wb") as log:
        process = subprocess.Popen(
            [str(program), "-i", str(copy), "--metadata", str(metadata), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or answers(f"{base}/-/versions.json"), 60, "Datasette's answer")
        assert process.poll() is None, (tmp_path / "datasette.log").read_text()
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_datasette_serves_a_view_of_the_copy_as_json(copy: Path, datasette: str) -> None:
    before = hashlib.sha256(copy.read_bytes()).hexdigest()
    rows = get_json(f"{datasette}/audit/card_sessions.json?_shape=array&_sort=inserted_seq")
    connection = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        cursor = connection.execute("SELECT * FROM card_sessions ORDER BY inserted_seq")
        names = [item[0] for item in cursor.description]
        expected = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()
    assert rows == expected and len(rows) == 2
    databases = get_json(f"{datasette}/-/databases.json")
    assert [(item["name"], item["is_mutable"]) for item in databases] == [("audit", False)]
    described = get_json(f"{datasette}/-/metadata.json")["databases"]["audit"]["tables"]
    assert {name: described[name]["description"] for name in VIEWS} == {
        name: view.description for name, view in VIEWS.items()
    }
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == before
