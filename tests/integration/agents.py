"""Reader agents for the integration tests (issue 23): the agent as a real process, its key pair, its enrolment,
and a TCP proxy in the test that delays every byte and can cut the link.

When cut, the proxy is a black hole for the connections it carries, as a pulled cable or a dead Wi-Fi is: nothing
passes either way and nothing is closed; the bytes that arrive meanwhile wait. Whatever ZeroMQ decides about those
connections during a cut (both ends close a silent one: contract/agent_link.py) it decides on its own, as across a
real network. A new connection during a cut is refused (closed as soon as accepted), as a router that has lost the
route answers: the agent's own reconnection backoff decides when it tries again, which is what the time to come
back after a cut measures.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.console import free_port
from tests.waiting import wait_for


def nhi_console(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("nhi-console")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "deploy.cli"]
    return subprocess.run([*entry, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def init_agent(agent_dir: Path) -> str:
    """`reader-agent --init`; returns the public key it says to enrol."""
    made = nhi_console("reader-agent", "--init", "--agent-dir", str(agent_dir))
    assert made.returncode == 0, made.stderr
    [line] = [line for line in made.stdout.splitlines() if "nhi-console agents add NAME" in line]
    return line.split()[-1]


def console_key(data_dir: Path) -> str:
    shown = nhi_console("agents", "console-key", "--data-dir", str(data_dir))
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def enrol(data_dir: Path, name: str, public_key: str) -> None:
    added = nhi_console("agents", "add", name, public_key, "--data-dir", str(data_dir))
    assert added.returncode == 0, added.stderr


@dataclass
class RunningAgent:
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_agent(
    agent_dir: Path, endpoint: str, console_public_key: str, *extra: str, env: dict[str, str] | None = None
) -> RunningAgent:
    script = Path(sys.executable).with_name("nhi-console")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "deploy.cli"]
    log_path = agent_dir.parent / f"agent-{agent_dir.name}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                *entry,
                "reader-agent",
                "--agent-dir",
                str(agent_dir),
                "--console",
                endpoint,
                "--console-key",
                console_public_key,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its workers with it: the test kills the whole group if need be
        )
    return RunningAgent(process, log_path)


def kill_agent_group(agent: RunningAgent) -> None:
    try:
        os.killpg(agent.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class _Pipe:
    """One direction of one connection: bytes wait here until `delay` after they arrived and the link is up."""

    source: socket.socket
    sink: socket.socket
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    ready: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False


class DelayProxy:
    """A TCP proxy from a port of its own to `upstream` that adds `delay` seconds each way and can be cut."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.delay = delay
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._stopping = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._up.clear()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._stopping = True
        self._up.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # no route now
                continue
            threading.Thread(target=self._connect, args=(client,), name="proxy-connect", daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sockets += [client, upstream]
        for pipe in (_Pipe(client, upstream), _Pipe(upstream, client)):
            threading.Thread(target=self._read, args=(pipe,), daemon=True).start()
            threading.Thread(target=self._write, args=(pipe,), daemon=True).start()

    def _read(self, pipe: _Pipe) -> None:
        while True:
            try:
                data = pipe.source.recv(65536)
            except OSError:
                data = b""
            with pipe.ready:
                if data:
                    pipe.queue.append((time.monotonic() + self.delay, data))
                else:
                    pipe.closed = True
                pipe.ready.notify()
            if not data:
                return

    def _write(self, pipe: _Pipe) -> None:
        while True:
            with pipe.ready:
                while not pipe.queue and not pipe.closed:
                    pipe.ready.wait()
                item = pipe.queue.popleft() if pipe.queue else None
            if item is None:  # the other end closed and everything before it went through
                self._up.wait()
                try:
                    pipe.sink.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            due, data = item
            time.sleep(max(0.0, due - time.monotonic()))
            self._up.wait()
            try:
                pipe.sink.sendall(data)
            except OSError:
                return


def agent_endpoint_port() -> int:
    return free_port()


def wait_for_readers(console_readers: object, names: set[str], timeout: float = 30) -> None:
    """Until the console lists all of `names` (a callable returning the set of attached readers)."""
    assert callable(console_readers)
    wait_for(lambda: names <= console_readers(), timeout, f"the readers {sorted(names)}")
