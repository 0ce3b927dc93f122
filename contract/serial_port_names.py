"""Which names `Initial` may open as a serial port, and the one name each port goes by. Pure.

`POST /api/common/v1/Initial` takes a device name from any caller and hands a serial port to a worker that opens
it read-write. A name is a serial port only if the console lists it itself (pyserial's listing, `--serial-port`,
the bench's NHI reader link), if it resolves to the same device as a listed port, or if it resolves to a
**terminal's character device under /dev**. Anything else (a regular file, a directory, a block device, a FIFO,
a path that leaves /dev through `..` or a symlink, a name that does not exist, a relative name, a pyserial URL)
is no device at all, and the caller gets the same 1002 whatever the file system holds there: the answer must not
tell a caller which files exist or may be opened.

A terminal, not any character device: opening `/dev/watchdog` arms a reboot, writing to `/dev/mem` or `/dev/kmsg`
touches the kernel, and a console run as root could open them all. A serial port is a terminal device: the kernel
files it under the `tty` class in sysfs (`/sys/dev/char/MAJOR:MINOR/subsystem`; ttyS, ttyUSB, ttyACM, rfcomm...),
except the Unix98 pseudo-terminal slaves (`/dev/pts/N`, majors 136 to 143), which sysfs does not list. Of the tty
class, the ones that are a person's screen or keyboard are refused: major 5 (`/dev/tty`, `/dev/console`,
`/dev/ptmx`) and the virtual consoles (major 4, minors below 64).

A port goes by one name (its key), whatever alias the caller used: the name the console lists for it when the
alias resolves to the same device as a listed port (the bench's link, whose pseudo-terminal changes at each replug,
stays the port's name), otherwise the resolved device path. Its worker, its reader names and the session's
`name` are that key, so `/dev/./ttyS0`, `/dev/../dev/ttyS0` and a symlink to it share one worker.

Windows port names (issue 21): HIS code written for the official console on Windows names the NHI reader `COM3`.
`serve --serial-port COM3=/dev/ttyUSB0` gives the port at that path the name `COM3` (the bench's NHI reader is
`COM1`). The Windows name is then the port's key, and comes first in the listing: it is what the HIS sends and
expects back in `name` and `readerName`, so the device path (and anything resolving to its device) is an alias of
it. A Windows name is matched as Windows matches it, case ignored (`com3` is `COM3`), and is never looked up on
the file system; one that is not mapped is 1002 with a message saying how to map it (it names no file, so it
tells nothing of the file system).

The file system is read by the caller (`broker.devices`): a name's real path (`os.path.realpath`) and what
`os.stat` says of it are this module's inputs, so the rule is tested without touching a disk.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Mapping

DEVICE_DIRECTORY = "/dev/"
TERMINAL_CLASS = "tty"
"""The sysfs class of terminal devices, serial ports among them."""
PTY_SLAVE_MAJORS = range(136, 144)
"""Unix98 pseudo-terminal slaves (Documentation/admin-guide/devices.txt): terminals sysfs does not list."""
CONSOLE_MAJOR = 5
"""`/dev/tty`, `/dev/console`, `/dev/ptmx`: the caller's own terminal, the system console, a new pty's master."""
VIRTUAL_CONSOLE_MAJOR, VIRTUAL_CONSOLE_MINORS = 4, range(64)
"""`/dev/tty0` to `/dev/tty63`: the screens of the machine's virtual consoles (ttyS0 and up are minors 64 and up)."""
WINDOWS_PORT_NUMBERS = range(1, 257)
"""`COM1` to `COM256`: the port names Windows gives serial ports."""
_COM = re.compile(r"COM([0-9]+)", re.ASCII | re.IGNORECASE)
NO_DEVICE_MESSAGE = "no such device, or none that works"
"""1002's one message for a name that is no device: the same whatever the file system holds there."""
MAPPING_EXAMPLE_DEVICE = "/dev/ttyUSB0"


def windows_port_name(name: str) -> str | None:
    """`COM3` for `COM3`, `com3` or `Com3` (Windows ignores the case of device names); None for anything else,
    `COM0`, `COM257` and `COM03` included (Windows has no such port)."""
    matched = _COM.fullmatch(name)
    if matched is None or matched[1].startswith("0") or int(matched[1]) not in WINDOWS_PORT_NUMBERS:
        return None
    return f"COM{int(matched[1])}"


def port_option(text: str) -> tuple[str | None, str]:
    """`serve --serial-port`'s value: `COMn=PATH` gives the port at PATH a Windows name, `(COMn, PATH)`; any other
    text is a PATH offered as it is, `(None, PATH)` (a path may hold `=`: only a Windows name before it maps).

    Raises ValueError, with what to write instead, for a Windows name with no device (`COM3`), a mapping to a
    relative path, and a `COMn=` whose n is no Windows port.
    """
    name, separator, path = text.partition("=")
    windows = windows_port_name(name)
    if separator and windows is not None:
        if not path.startswith("/"):
            raise ValueError(f"{text!r}: the device must be an absolute path, e.g. {windows}={MAPPING_EXAMPLE_DEVICE}")
        return windows, path
    if separator and _COM.fullmatch(name):
        raise ValueError(f"{text!r}: {name} is no Windows port name (COM1 to COM256)")
    if windows_port_name(text) is not None:
        raise ValueError(f"{text!r} needs the device it names: --serial-port {windows_port_name(text)}=PATH")
    return None, text


def no_device_message(name: str | None) -> str:
    """1002's message for `name`: for a Windows port name the console does not know, how to give it one (it names
    no file, so saying so tells nothing of the file system); for anything else the one message."""
    windows = windows_port_name(name) if name is not None else None
    if windows is None:
        return NO_DEVICE_MESSAGE
    return (
        f"no serial port is named {windows} here: start the console with "
        f"--serial-port {windows}={MAPPING_EXAMPLE_DEVICE} (the reader's device, from ls -l /dev/serial/by-id/)"
    )


def is_terminal(status: os.stat_result, device_class: str | None) -> bool:
    """Whether a character device is a terminal a serial reader can be on (see the module's docstring).

    `device_class`: the sysfs class its number is filed under (`tty`, `mem`, `misc`...), None if sysfs did not say.
    """
    major, minor = os.major(status.st_rdev), os.minor(status.st_rdev)
    if major == CONSOLE_MAJOR or (major == VIRTUAL_CONSOLE_MAJOR and minor in VIRTUAL_CONSOLE_MINORS):
        return False
    return device_class == TERMINAL_CLASS or major in PTY_SLAVE_MAJORS


def is_device_node(resolved: str, status: os.stat_result | None, device_class: str | None) -> bool:
    """Whether a resolved path is a terminal's character device under /dev (what a serial port is on Linux).

    `resolved` is `os.path.realpath`'s answer (no symlink, `.` or `..` left: checked again here, so that an
    unresolved path handed in by mistake is refused rather than trusted); `status` is `os.stat` of it, None if
    it could not be read; `device_class` as `is_terminal` takes it.
    """
    return (
        status is not None
        and stat.S_ISCHR(status.st_mode)
        and resolved.startswith(DEVICE_DIRECTORY)
        and posixpath.normpath(resolved) == resolved
        and is_terminal(status, device_class)
    )


def serial_port_key(
    name: str,
    listed: Mapping[str, str | None],
    resolved: str | None,
    status: os.stat_result | None,
    device_class: str | None = None,
) -> str | None:
    """The key of the serial port `name` names, or None if it names none (then `Initial` answers 1002).

    `listed`: each port the console lists, with its resolved path (None if it could not be resolved), the
    Windows names first (`listed_port_names`); `resolved`, `status`: `name`'s resolved path and `os.stat` of it
    (None if either could not be had; a Windows name is never looked up); `device_class`: the sysfs class of its
    device number. A Windows name is matched case ignored, and only against the listing. A listed name is a key,
    the first listed name of its device (a mapped path goes by its Windows name): the console offered it. An
    unlisted name must be absolute (a relative one would depend on the broker's working directory); if it
    resolves to the device of a listed port, that port's key is its key (the console offered that device);
    otherwise it must resolve to a terminal's character device under /dev, whose path is its key.
    """
    windows = windows_port_name(name)
    if windows is not None:
        return _first_of_device(windows, listed) if windows in listed else None
    if name in listed:
        return _first_of_device(name, listed)
    if resolved is None or not name.startswith("/") or status is None or not stat.S_ISCHR(status.st_mode):
        return None
    for port, port_resolved in listed.items():
        if port_resolved == resolved:
            return port
    return resolved if is_device_node(resolved, status, device_class) else None


def listed_port_names(listed: Mapping[str, str | None]) -> list[str]:
    """The one name of each listed port, in the listing's order: what `GET /api/common/v1/Name` offers. A listed
    name whose device an earlier one has (a mapped path, pyserial's name of a Windows-named port) is left out."""
    return [port for port in listed if _first_of_device(port, listed) == port]


def _first_of_device(port: str, listed: Mapping[str, str | None]) -> str:
    """The first listed name of `port`'s device; `port` itself if it could not be resolved (it is no alias)."""
    device = listed[port]
    if device is None:
        return port
    return next(name for name, resolved in listed.items() if resolved == device)
