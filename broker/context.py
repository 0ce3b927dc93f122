"""What the flows and the command handlers work with: the ledger (the state, and events to append), the
session's secrets, the devices, the clock, and the checks of credentials that need the DC's CRLs.

This is the one object a flow is handed (`ctx`); it implements the flows' context protocols
(`broker.flows.session.SessionContext` and the staff and health card ones). What a flow keeps between calls it
keeps in `ctx.secrets`, never in attributes of its own.
"""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import Generator, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.credentials.hca_trust import TrustStore, check_certificate
from broker.credentials.mobile_hca import verify_mobile_login
from broker.credentials.session_secrets import FetchedCrls, SessionSecrets
from broker.dc.seam import DcError
from broker.devices import Devices
from broker.domain import events as domain
from broker.domain.pseudonyms import Pseudonyms
from broker.domain.state import SAM_CLOUD, ConsoleState
from broker.flows.runner import DcCall, Step
from broker.flows.session import FlowFailed
from broker.ledger import Ledger
from contract.commands import MobileHcaLogin
from contract.status_codes import StatusCode

log = logging.getLogger(__name__)

CRL_CACHE_SECONDS = 3600.0
"""The HCA CRL is fetched from the DC again after this, or sooner if it says its next update has passed."""
MOBILE_HCA_FUTURE_SKEW_SECONDS = 60.0
"""A mobile HCA login more than a minute ahead of the console's clock is refused."""


class ConsoleContext:
    def __init__(
        self,
        ledger: Ledger,
        devices: Devices,
        *,
        pseudonyms: Pseudonyms | None = None,
        hca_trust: TrustStore | None = None,
        hpc_authentication_seconds: float,
        mobile_hca_window_seconds: float,
        vhc_issuers: Sequence[rsa.RSAPublicKey] = (),
    ) -> None:
        self.ledger = ledger
        self.devices = devices
        self.secrets = SessionSecrets()
        # Without the installation's key (unit tests), a throwaway one: pseudonyms still never leak numbers.
        self.pseudonyms = pseudonyms or Pseudonyms(secrets.token_bytes(32))
        self._hca_trust = hca_trust
        self._hpc_seconds = hpc_authentication_seconds
        self._mobile_window = mobile_hca_window_seconds
        self._vhc_issuers = list(vhc_issuers)

    # --- the state and the log ------------------------------------------------------------------------

    @property
    def state(self) -> ConsoleState:
        return self.ledger.state

    def emit(self, event: domain.Event) -> None:
        self.ledger.emit(event)

    def now(self) -> datetime.datetime:
        return self.ledger.now()

    def now_seconds(self) -> int:
        return self.ledger.wall_ns() // 1_000_000_000

    def iso_time(self, epoch_seconds: int) -> str:
        return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC).astimezone().isoformat(timespec="seconds")

    def authentication_expiry(self) -> str:
        """ISO 8601 time the staff authentication ends (8 hours from now by default)."""
        return (self.now() + datetime.timedelta(seconds=self._hpc_seconds)).astimezone().isoformat(timespec="seconds")

    def card_ref(self, card_number: str) -> str:
        return self.pseudonyms.card(card_number)

    def person_ref(self, id_no: str) -> str:
        return self.pseudonyms.person(id_no)

    # --- the session and its devices ------------------------------------------------------------------

    def end_session(self, reason: str) -> None:
        self.secrets.end_session()
        self.emit(domain.SessionFinalized(reason=reason))

    def open_device(self, device: str) -> int | None:
        """Open a device for a session: its SAM type, or None if it cannot be opened (a serial port is opened
        by its worker: `session_flows.initial` does that)."""
        if device not in self.state.cloud_sams:
            return None
        sam_file = self.devices.cloud_sams.load(device)
        if sam_file is None:
            log.warning("cloud SAM %s: its file is missing or unreadable", device)
            return None
        self.secrets.sam.open(sam_file)
        return SAM_CLOUD

    def device_candidates(self) -> list[str]:
        return self.devices.candidates(self.state)

    def serial_port(self, device: str) -> str | None:
        return self.devices.serial_port(self.state, device)

    def want_serial_device(self, port: str) -> None:
        self.devices.want_serial(port)

    def drop_serial_device(self, port: str) -> None:
        self.devices.drop_serial(port)

    def device_fault(self) -> int | None:
        return self.devices.session_fault(self.state)

    # --- credentials ----------------------------------------------------------------------------------

    @property
    def vhc_issuers(self) -> list[rsa.RSAPublicKey]:
        return self._vhc_issuers

    def _current_crls(self) -> Generator[Step, Any, list[x509.CertificateRevocationList]]:
        """The HCA CRLs from the DC, cached for an hour (or until one says its next update has passed)."""
        now = self.now()
        cached = self.secrets.crls
        if cached is not None:
            fresh = (now - cached.fetched).total_seconds() < CRL_CACHE_SECONDS
            if fresh and all(crl.next_update_utc is not None and crl.next_update_utc >= now for crl in cached.crls):
                return cached.crls
        try:
            ders: list[bytes] = yield DcCall(lambda dc: dc.hca_crls(), "Crl")
        except DcError as error:
            raise FlowFailed(error.code, f"the HCA revocation list could not be fetched: {error.reason}") from None
        crls = [x509.load_der_x509_crl(der) for der in ders]
        self.secrets.crls = FetchedCrls(crls, now)
        return crls

    def staff_certificate_problem(self, certificate_der: bytes) -> Generator[Step, Any, int | None]:
        """1422/1423/1424 for a staff card's certificate, None if it is good (may fetch the CRL from the DC)."""
        if self._hca_trust is None:
            return int(StatusCode.CERTIFICATE_ISSUER_UNTRUSTED)  # no trust store configured: nothing is trusted
        try:
            certificate = x509.load_der_x509_certificate(certificate_der)
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is not a ValueError
            return int(StatusCode.CERTIFICATE_ISSUER_UNTRUSTED)
        crls = yield from self._current_crls()
        problem = check_certificate(certificate, now=self.now(), trust=self._hca_trust, crls=crls)
        return None if problem is None else int(problem)

    def mobile_login_problem(self, login: MobileHcaLogin) -> Generator[Step, Any, int | None]:
        """The code a mobile HCA login fails with, or None (may fetch the CRL from the DC)."""
        sam_file = self.secrets.sam.file
        if sam_file is None:
            return int(StatusCode.SAM_LEVEL1_FAILED)
        if self._hca_trust is None:
            return int(StatusCode.CERTIFICATE_ISSUER_UNTRUSTED)
        crls = yield from self._current_crls()
        problem = verify_mobile_login(
            login,
            now=self.now(),
            trust=self._hca_trust,
            crls=crls,
            sam_hospital_id=sam_file.hospital_id,
            window_seconds=self._mobile_window,
            future_skew_seconds=MOBILE_HCA_FUTURE_SKEW_SECONDS,
        )
        return None if problem is None else int(problem)
