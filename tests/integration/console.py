"""A running `nhi-console serve` for tests: real processes, real TLS, real sockets.

Waits are on conditions (a Status answer, a pid appearing), each with a
deadline, never a bare sleep standing in for a state change.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.ports import free_loopback_port
from deploy.single_instance import ALREADY_SERVING
from tests.waiting import wait_for

TEST_CONSOLE_PORT_BAND = 1
"""Below the bench DC simulators' band: a console's port is never another console's DC port (deploy/ports.py)."""


def free_port() -> int:
    return free_loopback_port(band=TEST_CONSOLE_PORT_BAND)


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != b"Z"


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode(errors="replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def descendants(root: int) -> set[int]:
    """Every live process under `root`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] != b"Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class RunningConsole:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _connection: http.client.HTTPSConnection | None = field(default=None, repr=False)

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Answer:
        """One HTTPS call on a kept-alive connection, with this call's own timeout.

        Sent again (once, on a fresh connection) only when the kept-alive connection turned out to be closed by
        the server: a timeout is never retried, since the call may be running (a PIN verification sent twice
        would spend two of the card's tries).
        """
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        for attempt in range(2):
            reused = self._connection is not None
            if self._connection is None:
                self._connection = http.client.HTTPSConnection(
                    "localhost", self.port, context=self.ssl_context(), timeout=timeout
                )
            self._connection.timeout = timeout
            if self._connection.sock is not None:
                self._connection.sock.settimeout(timeout)
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                response = self._connection.getresponse()
                raw = response.read()
                return Answer(
                    response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None
                )
            except (http.client.HTTPException, ConnectionError, ssl.SSLError, OSError) as error:
                self._connection.close()
                self._connection = None
                stale = reused and isinstance(
                    error, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
                )
                if attempt == 1 or not stale:
                    raise
        raise AssertionError("unreachable")

    def send(
        self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request exactly as given (headers such as Origin, Host, Content-Type; a body as text), on a fresh
        connection, never resent: (HTTP status, lowercased headers, raw body)."""
        connection = http.client.HTTPSConnection("localhost", self.port, context=self.ssl_context(), timeout=70)
        try:
            connection.request(method, path, body=None if body is None else body.encode(), headers=headers or {})
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        return response.status, {name.lower(): value for name, value in response.getheaders()}, payload

    def status_ok(self) -> bool:
        try:
            answer = self.request("GET", "/api/common/v1/Status", timeout=2)
        except OSError:
            return False
        return answer.status == 200 and answer.body.get("statusCode") == 0

    def processes(self) -> dict[str, list[int]]:
        """The console's processes by role, from their command lines."""
        roles: dict[str, list[int]] = {"broker": [], "worker": [], "api": []}
        for pid in descendants(self.process.pid):
            line = " ".join(cmdline(pid))
            if "-m broker" in line:
                roles["broker"].append(pid)
            elif "-m workers" in line:
                roles["worker"].append(pid)
            elif "gunicorn" in line:
                roles["api"].append(pid)
        return roles

    sim: bool = True

    def database_rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the event log read-only, as an auditor's tool would while the console runs."""
        database = self.data_dir / ("sim-console.db" if self.sim else "console.db")
        if not database.exists():
            return []
        uri = f"file:{database}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=5) as connection:
            return connection.execute(sql, params).fetchall()

    def attached_readers(self) -> set[str]:
        """Readers whose workers registered with the broker, from the event log."""
        attached: set[str] = set()
        for type_name, payload in self.database_rows(
            "SELECT type, payload FROM events WHERE type IN ('ReaderAttached', 'ReaderDetached') ORDER BY seq"
        ):
            reader = json.loads(payload)["reader"]
            (attached.add if type_name == "ReaderAttached" else attached.discard)(reader)
        return attached

    def card_kinds(self) -> dict[str, str | None]:
        """What the console believes is in each reader (card kind or None), from its event log."""
        kinds: dict[str, str | None] = {}
        for type_name, payload in self.database_rows(
            "SELECT type, payload FROM events"
            " WHERE type IN ('CardInserted', 'CardRemoved', 'ReaderAttached', 'WorkerLost') ORDER BY seq"
        ):
            data = json.loads(payload)
            if type_name == "CardInserted":
                kinds[data["reader"]] = data["kind"]
            elif type_name != "ReaderAttached" or data["reader"] not in kinds:
                kinds[data["reader"]] = None
        return kinds

    def stop(self, timeout: float = 20) -> int:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


STARTED: list[RunningConsole] = []
"""Every console the tests started, for the end-of-run check that no PIN or PUK reached its files."""

SIM_READERS = {"NHI Sim Reader 0", "NHI Sim Reader 1"}
SIM_START_CARDS = {"NHI Sim Reader 0": "hc", "NHI Sim Reader 1": "hpc"}


def start_console(
    data_dir: Path,
    *extra: str,
    startup_timeout: float = 30,
    sim: bool = True,
    readers: set[str] | None = None,
) -> RunningConsole:
    """Start `serve` (`--sim` by default); return once Status answers and the expected readers' workers registered."""
    for _ in range(PORT_ATTEMPTS - 1):
        try:
            return _start_console_once(data_dir, *extra, startup_timeout=startup_timeout, sim=sim, readers=readers)
        except PortTaken:
            continue  # another test's console took the port `free_port` found free: try another
    return _start_console_once(data_dir, *extra, startup_timeout=startup_timeout, sim=sim, readers=readers)


PORT_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """The console refused to start (75) because another console serves the port it was given."""


def _start_console_once(
    data_dir: Path,
    *extra: str,
    startup_timeout: float,
    sim: bool,
    readers: set[str] | None,
) -> RunningConsole:
    expected_readers = readers if readers is not None else (SIM_READERS if sim else set())
    port = free_port()
    log_path = data_dir.parent / f"console-{port}.log"
    script = Path(sys.executable).with_name("nhi-console")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "deploy.cli"]
    with open(log_path, "wb") as log:  # the console writes to its own copy of the descriptor
        process = subprocess.Popen(
            [*entry, "serve", *(["--sim"] if sim else []), "--data-dir", str(data_dir), "--port", str(port), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    console = RunningConsole(data_dir=data_dir, port=port, process=process, log_path=log_path, sim=sim)
    STARTED.append(console)
    try:
        wait_for(
            lambda: process.poll() is not None or (console.ca_file.exists() and console.status_ok()),
            startup_timeout,
            "the console's first Status answer",
        )
        if process.poll() is not None:
            output = log_path.read_text()
            if process.returncode == ALREADY_SERVING and f"serving port {port}" in output:
                raise PortTaken(output)
            raise RuntimeError(f"console exited with {process.returncode}:\n{output}")
        if expected_readers:  # reading the readers' events walks the whole log: not for nothing (a 1M-event log)
            wait_for(lambda: expected_readers <= console.attached_readers(), startup_timeout, "the readers' workers")
        if sim and readers is None:
            wait_for(
                lambda: SIM_START_CARDS.items() <= console.card_kinds().items(),
                startup_timeout,
                "the bench's start cards",
            )
    except BaseException:
        if process.poll() is None:
            process.kill()
        raise
    return console


@contextmanager
def running_console(data_dir: Path, *extra: str, readers: set[str] | None = None) -> Iterator[RunningConsole]:
    """`start_console` for the length of a test: stopped afterwards, and anything of it that outlived the stop
    (a worker adopted by the supervisor, a killed broker's orphan) killed, so no test leaks a process."""
    running = start_console(data_dir, *extra, readers=readers)
    started = descendants(running.process.pid)
    try:
        yield running
    finally:
        running.stop()
        for pid in started | descendants(running.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
