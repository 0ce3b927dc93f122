"""`python -m broker`: the broker process, as the supervisor starts it."""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path

from broker.runtime.config import BrokerConfig, SimStart
from broker.runtime.loop import Broker, install_signal_handlers
from broker.runtime.worker_pool import ReaderSpec


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
    parser.add_argument("--pcsc-backend", default=None, help="module:factory; every reader pcscd lists gets a worker")
    parser.add_argument("--sim-backend", default=None, help="module:factory of the bench's in-process readers")
    parser.add_argument("--sim-reader", action="append", default=[], metavar="NAME[=PROFILE]",
                        help="a bench reader at start, with the profile of the card in it")
    parser.add_argument("--sim-default-reader", default=None)
    parser.add_argument("--pseudonym-key", type=Path, default=None, help="the installation's pseudonym key file")
    parser.add_argument("--archive-dir", type=Path, default=None, help="where sealed log segments go")
    parser.add_argument("--seal-max-rows", type=int, default=1_000_000, help="live events or calls before sealing")
    parser.add_argument("--seal-max-age-days", type=float, default=365.0)
    parser.add_argument("--seal-check-interval", type=float, default=60.0)
    parser.add_argument("--cloud-sam-dir", type=Path, default=None, help="where imported cloud SAM files are kept")
    parser.add_argument("--dc-url", default=None, help="the data center's base URL (docs/dc-protocol.md)")
    parser.add_argument("--dc-ca", type=Path, default=None, help="CA certificate(s) the DC's TLS certificate chains to")
    parser.add_argument("--hca-trust", type=Path, default=None, help="PEM bundle of trusted HCA roots and issuing CAs")
    parser.add_argument("--hpc-auth-hours", type=float, default=8.0, help="how long a staff authentication lasts")
    parser.add_argument("--mobile-hca-window", type=float, default=300.0, help="seconds a mobile HCA login stays fresh")
    parser.add_argument("--vhc-issuer", type=Path, default=None, help="PEM certificates of virtual card token issuers")
    parser.add_argument("--serial-port", action="append", default=[], metavar="PATH",
                        help="a serial port to offer besides the ones the machine lists (repeatable)")
    parser.add_argument("--sim-cloud-sam", type=Path, default=None, help="the bench's cloud SAM file, imported at start")
    args = parser.parse_args(argv)
    sim_start = None
    if args.sim_backend is not None:
        readers, cards = [], {}
        for item in args.sim_reader:
            name, _, profile = item.partition("=")
            readers.append(name)
            if profile:
                cards[name] = profile
        sim_start = SimStart(readers=readers, cards=cards, default_reader=args.sim_default_reader,
                             cloud_sam=args.sim_cloud_sam)
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
            pcsc_backend=args.pcsc_backend,
            sim_backend=args.sim_backend,
            sim_start=sim_start,
            pseudonym_key=args.pseudonym_key,
            archive_dir=args.archive_dir,
            seal_max_live_rows=args.seal_max_rows,
            seal_max_age_seconds=args.seal_max_age_days * 24 * 3600,
            seal_check_interval=args.seal_check_interval,
            cloud_sam_dir=args.cloud_sam_dir,
            dc_url=args.dc_url,
            dc_ca=args.dc_ca,
            hca_trust=args.hca_trust,
            hpc_authentication_seconds=args.hpc_auth_hours * 3600,
            mobile_hca_window_seconds=args.mobile_hca_window,
            vhc_issuer=args.vhc_issuer,
            extra_serial_ports=args.serial_port,
        )
    )
    install_signal_handlers(broker)
    # What start-up made (modules, the replayed state) lives as long as the process: kept out of the cyclic
    # collector's full passes, each of which would otherwise walk it all (~15 ms on 2 cores) mid-request.
    gc.freeze()
    broker.run()


if __name__ == "__main__":
    main()
