"""The link between a console and its reader agents (issue 23): names, keys and the socket options of both ends.

A reader agent (`nhi-console reader-agent`) runs the console's own worker code on the machine the reader is
plugged into, and its workers connect over TCP to the console's agent endpoint (`serve --agents`). The link is
CurveZMQ (RFC 26): encrypted, and both ends authenticated by key. The console knows an agent by the hash of its
public key (`key_id`), enrolled under a name (`nhi-console agents add NAME KEY`), and calls the agent's readers
`NAME/READER` (`remote_reader`). Neither end puts a key in a log line, an event or a message: the console's log
holds key ids, and the secret keys stay in their files (0600), read by path.

Timing is written here once, because it is what keeps the PIN rule across a network cut. A command the broker
sent may be held up on the way (a stalled link); the broker answers its caller when it takes the reader for lost
(`LIVENESS_INTERVALS` heartbeats of silence) or at the command's deadline, and must be sure the command will not
reach the card after that. So both ends close a silent connection (ZeroMQ's own heartbeats: `link_timeout`)
sooner than the broker takes the reader for lost, and what was still on the way dies with the connection: a
command is either delivered in time or never. The console's `HEARTBEAT_TTL` tells the agent's end to close as
early, whatever the agent was configured with.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import zmq
import zmq.auth
from zmq.utils import z85

LIVENESS_INTERVALS: Final = 3
"""Heartbeat intervals of silence after which the broker takes a worker (local or an agent's) for lost."""
LINK_SILENCE_SHARE: Final = 2 / 3
"""The share of that silence after which either end closes the link's connection: strictly less than all of it."""
RECONNECT_FIRST_MS: Final = 250
RECONNECT_MAX_MS: Final = 2000
"""The agent's reconnection backoff (ZeroMQ's own, doubling from the first to the max): a console that is back
is found within 2 s, and a console that is away costs one connection attempt every 2 s."""
HANDSHAKE_MS: Final = 5000
"""A CurveZMQ handshake takes three round trips (under a second at 200 ms each): one not done in 5 s is retried."""
ZAP_DOMAIN: Final = "nhi-console-agents"

AGENT_NAME: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
"""An agent's name: what its readers' names start with (`desk-2/...`), so no `/`, nothing to escape."""
PUBLIC_KEY_TEXT: Final = 40
"""A Curve25519 public key in Z85 (ZeroMQ's text form of its 32 bytes)."""
KEY_ID_SHOWN: Final = 16
"""Hex digits of a key id shown to people (`agents list`, log lines); the log keeps all 64."""
AGENT_KEY_NAME: Final = "agent"
"""`reader-agent --init` writes `agent.key` (public) and `agent.key_secret` (0600) in the agent's directory."""
CONSOLE_KEY_NAME: Final = "agent-link"
"""The console's own pair for the link, in its secrets dir: `agent-link.key` and `agent-link.key_secret`."""


class AgentLinkError(ValueError):
    """A name or key that cannot be used; the message never holds the key."""


def check_agent_name(name: str) -> str:
    if not AGENT_NAME.fullmatch(name):
        raise AgentLinkError("an agent's name is 1 to 32 of a-z, 0-9 and -, starting with a letter or digit")
    return name


def check_agent_endpoint(text: str) -> str:
    """`tcp://ADDRESS:PORT`, the one transport an agent can reach across machines (`*` for every address)."""
    match = re.fullmatch(r"tcp://(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})", text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise AgentLinkError(f"expected tcp://ADDRESS:PORT, got {text[:80]!r}")
    return text


def public_key_bytes(text: str) -> bytes:
    """The 32 bytes of a Z85 public key as `reader-agent --init` prints it."""
    cleaned = text.strip()
    if len(cleaned) != PUBLIC_KEY_TEXT:
        raise AgentLinkError(f"a public key is {PUBLIC_KEY_TEXT} characters of Z85 (what reader-agent --init printed)")
    try:
        return z85.decode(cleaned.encode("ascii"))
    except (ValueError, KeyError, UnicodeEncodeError):
        raise AgentLinkError("that is not a Z85 public key (what reader-agent --init printed)") from None


def key_id(public_key: bytes) -> str:
    """What the console knows an agent's key by: SHA-256 of its 32 bytes, in hex (not the key: a hash of it)."""
    return hashlib.sha256(public_key).hexdigest()


def key_id_of_text(public_key_z85: bytes | str) -> str:
    text = public_key_z85.decode("ascii") if isinstance(public_key_z85, bytes) else public_key_z85
    return key_id(public_key_bytes(text))


def shown(key: str) -> str:
    return key[:KEY_ID_SHOWN]


def remote_reader(agent: str, reader: str) -> str:
    """The console's name for an agent's reader: where it is, then what it is."""
    return f"{agent}/{reader}"


def split_remote(name: str) -> tuple[str, str] | None:
    """(agent, the agent's own reader name) of a remote reader's name; None for a name with no agent in it."""
    agent, slash, reader = name.partition("/")
    if not slash or not reader or not AGENT_NAME.fullmatch(agent):
        return None
    return agent, reader


def link_timeout(heartbeat_seconds: float) -> float:
    """Seconds of silence after which either end closes the link's connection (see the module's docstring)."""
    return heartbeat_seconds * LIVENESS_INTERVALS * LINK_SILENCE_SHARE


def _link_options(socket: zmq.Socket, heartbeat_seconds: float) -> None:
    timeout_ms = max(100, int(link_timeout(heartbeat_seconds) * 1000))
    socket.setsockopt(zmq.HEARTBEAT_IVL, max(50, timeout_ms // 4))
    socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
    socket.setsockopt(zmq.HEARTBEAT_TTL, timeout_ms)
    socket.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
    socket.setsockopt(zmq.TCP_KEEPALIVE, 1)


@dataclass(frozen=True)
class AgentKeys:
    """Where an agent's key pair is, and the console's public key (Z85) it will accept as the console."""

    secret_file: Path
    console_key: str


def configure_agent_end(socket: zmq.Socket, keys: AgentKeys, heartbeat_seconds: float) -> None:
    """An agent worker's socket: Curve client of the console's key, reconnecting with backoff, and queuing
    nothing while disconnected (a status or heartbeat held through a cut would be stale when it arrives)."""
    public, secret = zmq.auth.load_certificate(keys.secret_file)
    if secret is None:
        raise AgentLinkError(f"{keys.secret_file} holds no secret key (the agent's is agent.key_secret)")
    socket.setsockopt(zmq.CURVE_SERVERKEY, public_key_text(keys.console_key).encode("ascii"))
    socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_FIRST_MS)
    socket.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
    socket.setsockopt(zmq.CONNECT_TIMEOUT, HANDSHAKE_MS)
    socket.setsockopt(zmq.IMMEDIATE, 1)
    _link_options(socket, heartbeat_seconds)


def configure_console_end(socket: zmq.Socket, secret_file: Path, heartbeat_seconds: float) -> None:
    """The console's agent socket: Curve server, every client checked by the ZAP handler of `ZAP_DOMAIN`."""
    _, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise AgentLinkError(f"{secret_file} holds no secret key")
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode("ascii"))
    _link_options(socket, heartbeat_seconds)


def public_key_text(text: str) -> str:
    """A public key checked and stripped (an error never repeats it)."""
    public_key_bytes(text)
    return text.strip()


def ensure_key_pair(directory: Path, name: str) -> Path:
    """The secret key file of `name` in `directory`, made (0600, in a 0700 directory) if there is none yet."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret_file = directory / f"{name}.key_secret"
    if not secret_file.exists():
        public_file, made = zmq.auth.create_certificates(str(directory), name)
        Path(made).chmod(0o600)
        Path(public_file).chmod(0o644)
    return secret_file


def public_key_of(secret_file: Path) -> str:
    """The Z85 public key of a key pair file (a `.key_secret` holds both halves)."""
    public, _ = zmq.auth.load_certificate(secret_file)
    return public.decode("ascii")
