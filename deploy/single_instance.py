"""One console per data dir, and per port: the locks `serve` takes before anything else.

Why: two consoles on one data dir rebind each other's ipc sockets, append to one log from two writers, and
start two workers for every PC/SC reader; they clash and crash. Two on one port (different data dirs) still
give every reader two workers, and the second's API never binds. So `serve` first takes:

- **the data dir's lock**: `fcntl.flock(LOCK_EX | LOCK_NB)` on `<data dir>/serve.lock`, which then holds the
  holder's pid (written by the holder, after it has the lock; the file is never removed, since removing a
  lock file someone may be opening races with them). The kernel drops the lock when the supervisor exits,
  however it exits, so a `kill -9` leaves nothing stale to clean up; its children never inherit the
  descriptor (Python opens it non-inheritable) and die with it anyway (PR_SET_PDEATHSIG).
- **the port's lock**: a listening Unix socket in the abstract namespace, `@nhi-console/port/<port>`,
  machine-wide (per network namespace) whatever the data dir, user, or the unit's `PrivateTmp`, and gone
  with the process. Whoever finds it taken connects and reads the holder's pid with SO_PEERCRED.

A second `serve` that finds either taken touches nothing: it opens the lock file without truncating it,
writes nothing, binds nothing else, and exits with `ALREADY_SERVING` and one line naming the pid.
`nhi-console doctor` reads the same facts (`lock_holder`) without taking any lock: /proc/locks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LOCK_FILE_NAME: Final = "serve.lock"
ALREADY_SERVING: Final = 75
"""EX_TEMPFAIL: another console holds the data dir or the port. The systemd unit does not restart on it."""


class AlreadyServing(RuntimeError):
    """Another console holds the data dir or the port; the message is the one line `serve` prints."""


@dataclass
class InstanceLocks:
    """What `serve` holds while it runs: released by `release()` or, whatever happens, by its exit."""

    lock_file: int
    port_socket: socket.socket
    drain: threading.Thread

    def release(self) -> None:
        # shutdown() wakes the thread blocked in accept(); a bare close() would not, and the name would stay bound.
        with contextlib.suppress(OSError):
            self.port_socket.shutdown(socket.SHUT_RDWR)
        self.drain.join(timeout=2)
        self.port_socket.close()
        os.close(self.lock_file)


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_FILE_NAME


def port_lock_name(port: int) -> bytes:
    return f"\0nhi-console/port/{port}".encode()


def acquire(data_dir: Path, port: int) -> InstanceLocks:
    """Take the data dir's lock, then the port's; raise `AlreadyServing` (having changed nothing) if either is held."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = lock_path(data_dir)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _pid_in(descriptor) or lock_holder(path)
        os.close(descriptor)
        who = f"pid {holder}" if holder else "another process"
        raise AlreadyServing(
            f"nhi-console: not starting: {who} is already serving the data dir {data_dir} (it holds {path})"
        ) from None
    try:
        port_socket = _take_port(port, data_dir)
    except BaseException:
        os.close(descriptor)  # the lock goes with it; the file keeps the previous holder's pid, untouched
        raise
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
    # Whoever asks who holds the port connects; accept and close at once, so the backlog never fills.
    drain = threading.Thread(target=_drain, args=(port_socket,), name="port-lock", daemon=True)
    drain.start()
    return InstanceLocks(descriptor, port_socket, drain)


def _take_port(port: int, data_dir: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.bind(port_lock_name(port))
    except OSError as error:
        sock.close()
        if error.errno != errno.EADDRINUSE:
            raise
        holder = port_holder(port)
        who = f"pid {holder}" if holder else "another console"
        raise AlreadyServing(
            f"nhi-console: not starting: {who} is already serving port {port} (this data dir is {data_dir})"
        ) from None
    sock.listen(8)
    return sock


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            connection, _ = sock.accept()
        except OSError:
            return  # shut down by release()
        connection.close()


def port_holder(port: int) -> int | None:
    """The pid of the console holding `port`'s lock, from SO_PEERCRED; None if none does."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(port_lock_name(port))
            credentials = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid, _, _ = struct.unpack("3i", credentials)
    return pid or None


def _pid_in(descriptor: int) -> int | None:
    """The pid the holder wrote into the lock file (read through our own descriptor, without writing)."""
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(descriptor, 32, 0).decode("ascii").strip()
        return int(text) if text else None
    return None


def lock_holder(path: Path) -> int | None:
    """The pid holding an flock on `path`, from /proc/locks; None if nobody does. Takes no lock itself.

    Why not try the lock: a doctor that holds it even for a moment could make a console starting at that
    moment refuse to start.
    """
    try:
        stat = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" ("->" marks a waiter, which holds nothing)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device and fields[4].isdigit():
            return int(fields[4])
    return None
