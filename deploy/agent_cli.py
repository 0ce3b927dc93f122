"""`nhi-console reader-agent` (the reader's machine) and `nhi-console agents` (the console's): issue 23.

On the reader's machine, `reader-agent --init` makes the agent's key pair and prints the public key to enrol;
`reader-agent --console tcp://HOST:PORT --console-key KEY` serves the machine's readers to that console.

On the console, `agents console-key` prints the console's public key (what an agent is told to trust), and
`agents add NAME KEY`, `list` and `remove NAME` change the enrolments, which are events in the console's log. They
talk to the running console over its local socket (the API's own): the console's log has one writer. Only the
key's id (a SHA-256 of it) goes to the console; the key is checked and hashed here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.core_client import CoreClient, CoreUnavailable
from contract.agent_link import (
    AGENT_KEY_NAME,
    CONSOLE_KEY_NAME,
    AgentKeys,
    AgentLinkError,
    check_agent_endpoint,
    check_agent_name,
    ensure_key_pair,
    key_id,
    public_key_bytes,
    public_key_of,
    public_key_text,
    shown,
)
from contract.settings import ReaderSettings
from contract.status_codes import StatusCode
from deploy.paths import console_paths
from deploy.reader_agent import AgentConfig, default_agent_dir, run_agent

Subcommands = Any  # argparse's private _SubParsersAction


def _endpoint(text: str) -> str:
    try:
        return check_agent_endpoint(text)
    except AgentLinkError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _public_key(text: str) -> str:
    try:
        return public_key_text(text)
    except AgentLinkError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _agent_name(text: str) -> str:
    try:
        return check_agent_name(text)
    except AgentLinkError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _sim_reader(text: str) -> tuple[str, str]:
    name, equals, profile = text.partition("=")
    if not equals or not name or not profile:
        raise argparse.ArgumentTypeError("expected NAME=PROFILE")
    return name, profile


def add_agent_commands(commands: Subcommands, common: Callable[[argparse.ArgumentParser], None]) -> None:
    agent = commands.add_parser("reader-agent", help="serve this machine's readers to a console on another machine")
    agent.add_argument(
        "--agent-dir", type=Path, default=default_agent_dir(), help="where the agent's key pair is (0700)"
    )
    agent.add_argument("--init", action="store_true", help="make the agent's key pair if none, and print what to enrol")
    agent.add_argument("--new-key", action="store_true", help="with --init: a new key pair (rotation)")
    agent.add_argument("--console", type=_endpoint, metavar="tcp://HOST:PORT", help="the console's agent endpoint")
    agent.add_argument("--console-key", type=_public_key, help="the console's public key (`agents console-key`)")
    agent.add_argument("--pcsc", action=argparse.BooleanOptionalAction, default=True, help="serve pcscd's readers")
    agent.add_argument(
        "--serial", action="append", default=[], metavar="PORT", help="an NHI dedicated reader's port (repeatable)"
    )
    agent.add_argument(
        "--sim-reader",
        action="append",
        type=_sim_reader,
        default=[],
        metavar="NAME=PROFILE",
        help="SIMULATION ONLY: a bench reader with a card of that profile in it (repeatable)",
    )
    agent.add_argument("--heartbeat", type=float, default=ReaderSettings.heartbeat_seconds, help=argparse.SUPPRESS)
    agent.set_defaults(handler=reader_agent)

    agents = commands.add_parser("agents", help="the reader agents this console accepts (serve --agents)")
    actions = agents.add_subparsers(dest="agents_command", required=True)
    add = actions.add_parser("add", help="enrol an agent's public key under a name (its readers: NAME/...)")
    add.add_argument("name", type=_agent_name)
    add.add_argument("public_key", type=_public_key, metavar="PUBLIC_KEY")
    add.add_argument("--replace", action="store_true", help="give an enrolled agent a new key (rotation)")
    add.set_defaults(handler=agents_add)
    common(add)
    listing = actions.add_parser("list", help="the enrolled agents and the readers they serve now")
    listing.set_defaults(handler=agents_list)
    common(listing)
    remove = actions.add_parser("remove", help="stop accepting an agent; its readers leave")
    remove.add_argument("name", type=_agent_name)
    remove.set_defaults(handler=agents_remove)
    common(remove)
    console_key = actions.add_parser("console-key", help="print the console's public key, for the agents")
    console_key.set_defaults(handler=agents_console_key)
    common(console_key)


def reader_agent(args: argparse.Namespace) -> int:
    for handler in logging.getLogger().handlers:  # its lines are the agent's, not the console supervisor's
        handler.setFormatter(logging.Formatter("%(asctime)s reader-agent %(levelname)s %(name)s: %(message)s"))
    secret_file = args.agent_dir / f"{AGENT_KEY_NAME}.key_secret"
    if args.init:
        if args.new_key and secret_file.exists():
            retired = secret_file.with_name(f"{AGENT_KEY_NAME}.key_secret.retired")
            secret_file.replace(retired)
            secret_file.with_name(f"{AGENT_KEY_NAME}.key").unlink(missing_ok=True)
            print(f"the old key pair is kept as {retired} until the console has the new one")
        ensure_key_pair(args.agent_dir, AGENT_KEY_NAME)
        public = public_key_of(secret_file)
        print(f"the agent's key pair: {secret_file} (0600; the secret half never leaves this machine)")
        print(f"its key id: {shown(key_id(public_key_bytes(public)))}")
        print("enrol it on the console with:")
        print(f"  nhi-console agents add NAME {public}{' --replace' if args.new_key else ''}")
        return 0
    if args.console is None or args.console_key is None:
        print("nhi-console reader-agent: --console and --console-key are needed (or --init)", file=sys.stderr)
        return 2
    if not secret_file.exists():
        print(f"nhi-console reader-agent: no key pair in {args.agent_dir}: run with --init first", file=sys.stderr)
        return 2
    config = AgentConfig(
        console=args.console,
        keys=AgentKeys(secret_file, args.console_key),
        pcsc=args.pcsc,
        serial_ports=tuple(args.serial),
        sim_readers=tuple(args.sim_reader),
        heartbeat_seconds=args.heartbeat,
    )
    return run_agent(config)


def _call(
    args: argparse.Namespace, command: str, arguments: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    client = CoreClient(console_paths(args.data_dir).api_endpoint, timeout=10)
    try:
        reply = client.call(command, arguments or {})
    except CoreUnavailable as error:
        print(f"nhi-console agents: the console is not answering ({error}): is it serving?", file=sys.stderr)
        return 1, {}
    return reply.code, reply.body


def _said(code: int, body: dict[str, Any]) -> int:
    message = str(body.get("message", ""))
    if code == StatusCode.OK:
        if message:
            print(message)
        return 0
    print(f"nhi-console agents: {message or f'refused with {code}'}", file=sys.stderr)
    return 1


def agents_add(args: argparse.Namespace) -> int:
    identifier = key_id(public_key_bytes(args.public_key))
    command = "ReplaceAgentKey" if args.replace else "EnrollAgent"
    code, body = _call(args, command, {"name": args.name, "keyId": identifier})
    return _said(code, body) if body or code else 1


def agents_remove(args: argparse.Namespace) -> int:
    code, body = _call(args, "RemoveAgent", {"name": args.name})
    return _said(code, body) if body or code else 1


def agents_list(args: argparse.Namespace) -> int:
    code, body = _call(args, "ListAgents")
    if code != StatusCode.OK:
        return _said(code, body) if body or code else 1
    agents = body.get("agents", [])
    if not agents:
        print("no agent is enrolled")
    for agent in agents:
        readers = ", ".join(agent["readers"]) or "no reader connected"
        print(f"{agent['name']}  key id {agent['keyId']}  {readers}")
    return 0


def agents_console_key(args: argparse.Namespace) -> int:
    """The console's public key, made if this console has none yet (as `serve --agents` would)."""
    secret_file = console_paths(args.data_dir).agent_link_key
    ensure_key_pair(secret_file.parent, CONSOLE_KEY_NAME)
    print(public_key_of(secret_file))
    return 0
