"""`python -m broker`: the broker process, as the supervisor starts it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from broker.loop import Broker, BrokerConfig, install_signal_handlers
from broker.worker_pool import ReaderSpec


def _reader(text: str) -> ReaderSpec:
    name, separator, backend = text.rpartition("=")
    if not separator or not name or not backend:
        raise argparse.ArgumentTypeError("expected NAME=module:factory")
    return ReaderSpec(name=name, backend=backend)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m broker")
    parser.add_argument("--api-endpoint", required=True)
    parser.add_argument("--worker-endpoint", required=True)
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--durability", choices=["full", "normal"], default="full")
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--reader", type=_reader, action="append", default=[], help="NAME=module:factory")
    parser.add_argument("--adopt-grace", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s broker %(levelname)s %(name)s: %(message)s")
    broker = Broker(
        BrokerConfig(
            api_endpoint=args.api_endpoint,
            worker_endpoint=args.worker_endpoint,
            database=args.database,
            durability=args.durability,
            heartbeat_interval=args.heartbeat,
            readers=args.reader,
            adopt_grace=args.adopt_grace,
        )
    )
    install_signal_handlers(broker)
    broker.run()


if __name__ == "__main__":
    main()
