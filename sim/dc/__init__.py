"""The bench's data center (DC) simulator: serves docs/dc-protocol.md over HTTPS, plus the bench's controls.

SIMULATION ONLY. The NHI's DC protocol is not public; this serves ours, so the
console's DC client (`broker.dc.client`) is exercised end to end. Modules:
`state` (the state dir and its SQLite database), `tls` (the simulator's own
TLS CA and server certificate), `sam_files` (the SAM CA, issuing cloud SAM
files), `vhc_issuer` (the key that signs the bench's virtual card tokens),
`service` (the request handling, without sockets), `server` (the HTTPS
adapter), `__main__` (`python -m sim.dc prepare|serve`).

`prepare` lives here because it is the package's one entry point that ties
the others together: what `python -m sim.dc prepare` and the console's
`serve --sim` both call before serving.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from broker.credentials.cloud_sam_file import CloudSamFileInvalid, parse_cloud_sam_file
from sim.dc.sam_files import SamCa, issue_cloud_sam
from sim.dc.state import Contract, DcState, StateDir, write_file
from sim.dc.tls import ensure_tls
from sim.dc.vhc_issuer import VhcIssuer
from sim.pki import bench_pki

BENCH_HOSPITAL_ID = "777777777"
BENCH_HOSPITAL_NAME = "測試機構"
BENCH_SAM_ID = "901000000047"
BENCH_NHI_SAM_ID = "000100000047"
"""The physical SAM inside the bench's NHI dedicated reader: same hospital as the cloud SAM, its own id."""

__all__ = ["BENCH_HOSPITAL_ID", "BENCH_HOSPITAL_NAME", "BENCH_NHI_SAM_ID", "BENCH_SAM_ID", "PreparedDc", "prepare"]


@dataclass(frozen=True)
class PreparedDc:
    """Where a prepared simulator's files are: what the console's bench needs to know."""

    state_dir: Path
    ca_cert: Path
    """The TLS CA the console's DC client must trust."""
    bench_sam_file: Path
    """The bench SAM's file (mode 0600), ready for `POST /api/settings/v1/CloudSam`."""
    database: Path
    hca_trust: Path
    """The bench HCA root certificate then its issuing CA certificate, PEM (mode 0644: certificates only)."""
    vhc_issuer: Path
    """The virtual health card issuer's certificate (PEM, 0644): what the console trusts for virtual card tokens."""
    bench_nhi_sam_file: Path
    """The bench NHI reader's physical SAM (mode 0600): what `python -m sim.nhi_reader_service` loads."""


def prepare(state_dir: Path) -> PreparedDc:
    """Create the simulator's state and the bench's start state, once; later calls change nothing.

    Idempotent and fast on a second run (no key is generated unless a file is
    missing). Serialised by a lock file, so a `prepare` and a `serve` started
    together cannot both mint the bench SAM. The bench SAM is issued again
    (contract active) only if its file is missing or no longer the SAM the DC
    knows (e.g. the bench reissued `901000000047` through `/sim/v1/CloudSam`).
    The same holds for the bench NHI reader's physical SAM (`000100000047`,
    `bench-nhi-sam.sam`): the DC must know it too, because the reader's SAM
    logs in to the DC exactly as a cloud SAM does.
    `hca-trust.pem` is rewritten only if it is missing or not the bench PKI's
    (`sim.pki`, which each process builds once, in ~50-100 ms). The virtual
    card issuer (`vhc-issuer.key` 0600, `vhc-issuer.pem`) is made only if
    either file is missing or the two do not match.
    """
    layout = StateDir(Path(state_dir))
    layout.ensure()
    descriptor = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        ensure_tls(layout)
        sam_ca = SamCa.ensure(layout)
        VhcIssuer.ensure(layout)
        state = DcState(layout.database)
        try:
            for sam_id, path in ((BENCH_SAM_ID, layout.bench_sam_file), (BENCH_NHI_SAM_ID, layout.bench_nhi_sam_file)):
                if not _bench_sam_file_current(state, sam_id, path):
                    file_bytes = issue_cloud_sam(
                        state, sam_ca, sam_id, BENCH_HOSPITAL_ID, BENCH_HOSPITAL_NAME, Contract.ACTIVE
                    )
                    write_file(path, file_bytes, 0o600)
        finally:
            state.close()
        _ensure_hca_trust(layout)
    finally:
        os.close(descriptor)  # releases the lock
    return PreparedDc(
        layout.root,
        layout.ca_cert,
        layout.bench_sam_file,
        layout.database,
        layout.hca_trust,
        layout.vhc_issuer_cert,
        layout.bench_nhi_sam_file,
    )


def _ensure_hca_trust(layout: StateDir) -> None:
    """Write `hca-trust.pem` (root, then issuing CA) if it is missing or differs; otherwise leave it be."""
    pki = bench_pki()
    wanted = pki.trust_store_pem() + pki.issuing_ca_pem()
    try:
        if layout.hca_trust.read_bytes() == wanted:
            return
    except FileNotFoundError:
        pass
    write_file(layout.hca_trust, wanted, 0o644)


def _bench_sam_file_current(state: DcState, sam_id: str, path: Path) -> bool:
    """Whether the SAM file at `path` parses and holds the certificate the DC has for `sam_id`."""
    record = state.sam(sam_id)
    if record is None or not path.is_file():
        return False
    try:
        sam_file = parse_cloud_sam_file(path.read_bytes())
    except (OSError, CloudSamFileInvalid):
        return False
    return sam_file.sam_id == sam_id and sam_file.certificate == x509.load_pem_x509_certificate(
        record.certificate_pem.encode("ascii")
    )
