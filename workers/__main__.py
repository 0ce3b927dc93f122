"""`python -m workers`: one reader's worker, as the broker starts it.

It reads no settings file: what it needs is per reader (its endpoint, reader and back-end) or the broker's
own (the heartbeat the broker runs with), so the broker passes it; the defaults are the settings' defaults."""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path

from contract.agent_link import AgentKeys
from contract.settings import ReaderSettings
from workers.loop import WorkerConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--reader", required=True)
    parser.add_argument("--backend", required=True, help="module:factory that opens the reader")
    parser.add_argument("--device", default=None, help="what the back-end opens, if not the reader's name")
    parser.add_argument("--heartbeat", type=float, default=ReaderSettings.heartbeat_seconds)
    parser.add_argument("--orphan-after", type=float, default=WorkerConfig.orphan_after)
    parser.add_argument("--agent-keys", type=Path, default=None, help="a reader agent's key pair file (its path only)")
    parser.add_argument("--console-key", default=None, help="the console's public key, with --agent-keys")
    args = parser.parse_args(argv)
    link = None
    if args.agent_keys is not None:
        if args.console_key is None:
            parser.error("--agent-keys needs --console-key")
        link = AgentKeys(args.agent_keys, args.console_key)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    gc.freeze()  # the imported modules: out of the collector's full passes, which would walk them mid-command
    run(
        WorkerConfig(
            args.endpoint, args.reader, args.backend, args.heartbeat, args.orphan_after, device=args.device, link=link
        )
    )


if __name__ == "__main__":
    main()
