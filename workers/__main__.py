"""`python -m workers`: one reader's worker, as the broker starts it."""

from __future__ import annotations

import argparse
import gc
import logging

from workers.loop import WorkerConfig, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--reader", required=True)
    parser.add_argument("--backend", required=True, help="module:factory that opens the reader")
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--orphan-after", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    gc.freeze()  # the imported modules: out of the collector's full passes, which would walk them mid-command
    run(WorkerConfig(args.endpoint, args.reader, args.backend, args.heartbeat, args.orphan_after))


if __name__ == "__main__":
    main()
