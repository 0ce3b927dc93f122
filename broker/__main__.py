"""`python -m broker --settings PATH [--restarted]`: the broker process, as the supervisor starts it.

Everything it is configured with is in the settings file `serve` wrote (contract/settings.py); the one thing
that is not a setting, whether this start is a restart after the previous broker died, is a flag.
"""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path

from broker.runtime.config import broker_config
from broker.runtime.loop import Broker, install_signal_handlers
from contract.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m broker")
    parser.add_argument("--settings", type=Path, required=True, help="the settings file `nhi-console serve` wrote")
    parser.add_argument(
        "--restarted",
        action="store_true",
        help="the previous broker died: wait for its workers to re-register before starting others",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.read(args.settings)
    except SettingsError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s broker %(levelname)s %(name)s: %(message)s")
    broker = Broker(broker_config(settings, restarted=args.restarted))
    install_signal_handlers(broker)
    # What start-up made (modules, the replayed state) lives as long as the process: kept out of the cyclic
    # collector's full passes, each of which would otherwise walk it all (~15 ms on 2 cores) mid-request.
    gc.freeze()
    broker.run()


if __name__ == "__main__":
    main()
