"""`HttpsDataCenter`: the console's HTTPS client for the DC protocol (docs/dc-protocol.md).

This module only moves bytes; what an answer means is `broker.dc.answers`
(pure, tested row by row). One new connection per call: the broker calls from
a thread pool, several calls may run at once, and a call is rare enough that
sharing nothing is simpler than a pool.

Secrets (the session, nonces, signatures, card numbers, transfer tokens, card
data, answers) never reach a log line or an exception message: DEBUG logs say
`endpoint -> status/code`.
"""

from __future__ import annotations

import base64
import datetime
import functools
import http.client
import json
import logging
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from broker.dc.answers import (
    MAX_ANSWER_BYTES,
    MAX_CRL_ANSWER_BYTES,
    SESSION_TOKEN,
    Answer,
    interpret_answer,
    parse_card_cryptogram,
    parse_card_notes,
    parse_crls,
    parse_imported_virtual_hc,
    parse_nonce,
    parse_server_time,
    parse_session,
    parse_transfer_token,
    parse_verification_count,
    parse_verified,
)
from broker.dc.seam import CardCryptogram, DcError, DcSession, ImportedVirtualHc
from contract.status_codes import StatusCode

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRIED_CODES = frozenset({StatusCode.DC_CONNECTION_FAILED, StatusCode.DC_HTTP_ERROR})
"""What a call that changes nothing at the DC (GET Time, GET Crl, POST Sam/Challenge) is retried once after."""


class HttpsDataCenter:
    """The `DataCenter` seam over HTTPS; every failure is a `DcError` with the console's code."""

    def __init__(
        self,
        base_url: str,
        ca_file: Path | None,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        """`base_url` is `https://host[:port]` (the client appends `/dc/v1/...`); `ca_file` None: the system store.

        A bad URL or CA file fails here, at start-up, rather than as a 1700 on
        every call later. The URL is never echoed: it could carry credentials.
        """
        parts = urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the DC's base URL must be https://host[:port]")
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            raise ValueError("the DC's base URL must not carry credentials, a query or a fragment")
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("DC timeouts must be positive")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._prefix = parts.path.rstrip("/") + "/dc/v1/"
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        # Certificate and hostname checked (the default context's defaults); one context, shared by all threads.
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)

    # ------------------------------------------------------------------ #
    # the seam
    # ------------------------------------------------------------------ #

    def sam_challenge(self, sam_id: str) -> bytes:
        """A fresh 16-byte nonce for `sam_login`; retried once, since it changes nothing at the DC."""
        return self._call("POST", "Sam/Challenge", parse_nonce, payload={"samId": sam_id}, retry=True)

    def sam_login(self, sam_id: str, nonce: bytes, signature: bytes) -> DcSession:
        """Never retried: the nonce is single-use, and a login that may have run is not run twice."""
        payload = {"samId": sam_id, "nonce": _b64(nonce), "signature": _b64(signature)}
        return self._call("POST", "Sam/Login", parse_session, payload=payload)

    def server_time(self, session: str) -> datetime.datetime:
        """The DC's clock (aware); retried once, since it changes nothing at the DC."""
        return self._call("GET", "Time", parse_server_time, session=session, retry=True)

    def card_challenge(self, session: str, card_number: str, card_challenge: bytes) -> CardCryptogram:
        """First half of a card's mutual authentication; never retried."""
        payload = {"cardNumber": card_number, "cardChallenge": _b64(card_challenge)}
        return self._call("POST", "Cards/Challenge", parse_card_cryptogram, payload=payload, session=session)

    def card_verify(self, session: str, auth_id: str, card_response: bytes) -> None:
        """Second half; a wrong card answer raises DcError(1799, "authenticationFailed") for the caller to read."""
        payload = {"authId": auth_id, "cardResponse": _b64(card_response)}
        self._call("POST", "Cards/Verify", parse_verified, payload=payload, session=session)

    def hca_crls(self) -> list[bytes]:
        """The HCA issuing CAs' CRLs (DER); no session; retried once, since it changes nothing at the DC.

        The one answer allowed past 64 KiB (up to 2 MiB): CRLs grow with their revocations.
        """
        return self._call("GET", "Crl", parse_crls, retry=True, max_answer_bytes=MAX_CRL_ANSWER_BYTES)

    def virtual_hc_verify(self, session: str, token_id: str, max_uses: int, expires_at: int) -> int:
        """Count one verification of a virtual card at the DC; never retried (a lost answer may have counted)."""
        payload = {"tokenId": token_id, "maxUses": max_uses, "expiresAt": expires_at}
        parse = functools.partial(parse_verification_count, max_uses=max_uses)
        return self._call("POST", "VirtualHc/Verify", parse, payload=payload, session=session)

    def virtual_hc_export(
        self, session: str, token_id: str, card: dict[str, str], expires_at: int, max_uses: int
    ) -> str:
        """The transfer token for a virtual card; never retried (an export that may have run voided the card)."""
        payload = {"tokenId": token_id, "card": card, "expiresAt": expires_at, "maxUses": max_uses}
        return self._call("POST", "VirtualHc/Export", parse_transfer_token, payload=payload, session=session)

    def virtual_hc_import(self, session: str, transfer_token: str) -> ImportedVirtualHc:
        """Take over an exported virtual card under a new token id; never retried (an import is single-use)."""
        payload = {"transferToken": transfer_token}
        return self._call("POST", "VirtualHc/Import", parse_imported_virtual_hc, payload=payload, session=session)

    def card_notes(self, session: str, card_number: str) -> bytes:
        """A health card's updated notes (1 to 200 bytes) to write onto it; not retried, like every card step."""
        payload = {"cardNumber": card_number}
        return self._call("POST", "RealHc/Notes", parse_card_notes, payload=payload, session=session)

    # ------------------------------------------------------------------ #
    # one call
    # ------------------------------------------------------------------ #

    def _call(
        self,
        method: str,
        endpoint: str,
        parse: Callable[[str, Answer], T],
        *,
        payload: Mapping[str, object] | None = None,
        session: str | None = None,
        retry: bool = False,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> T:
        headers = {"Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if session is not None:
            # Anything else would be refused by http.client with the value in the message, or split the header.
            if not SESSION_TOKEN.fullmatch(session):
                raise DcError(StatusCode.DC_SESSION_EXPIRED, "badSession", f"DC {endpoint}: not a session")
            headers["Authorization"] = f"Bearer {session}"
        try:
            return self._attempt(method, endpoint, parse, body, headers, max_answer_bytes)
        except DcError as error:
            if not retry or error.code not in RETRIED_CODES:
                raise
        return self._attempt(method, endpoint, parse, body, headers, max_answer_bytes)

    def _attempt(
        self,
        method: str,
        endpoint: str,
        parse: Callable[[str, Answer], T],
        body: bytes | None,
        headers: dict[str, str],
        max_answer_bytes: int,
    ) -> T:
        status: int | None = None
        try:
            status, answer = self._exchange(method, endpoint, body, headers, max_answer_bytes)
            result = parse(endpoint, interpret_answer(endpoint, status, answer, max_answer_bytes))
        except DcError as error:
            log.debug("DC %s -> %s/%d", endpoint, "-" if status is None else status, error.code)
            raise
        log.debug("DC %s -> %d/%d", endpoint, status, StatusCode.OK)
        return result

    def _exchange(
        self, method: str, endpoint: str, body: bytes | None, headers: dict[str, str], max_answer_bytes: int
    ) -> tuple[int, bytes]:
        """One request on a new connection: (HTTP status, at most `max_answer_bytes` + 1 of the body), else 1700.

        The connect timeout covers TCP and the TLS handshake; the read timeout
        covers each wait for the DC after that.
        """
        connection = http.client.HTTPSConnection(
            self._host, self._port, timeout=self._connect_timeout, context=self._context
        )
        try:
            connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(self._read_timeout)
            connection.request(method, self._prefix + endpoint, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read(max_answer_bytes + 1)
        except (OSError, http.client.HTTPException) as error:
            # `from None`: some of these (BadStatusLine, ...) quote what the server sent.
            raise DcError(
                StatusCode.DC_CONNECTION_FAILED, _no_answer_reason(error), f"DC {endpoint}: no answer"
            ) from None
        finally:
            connection.close()


def _no_answer_reason(error: Exception) -> str:
    """A short name for why there was no answer: enough to tell a firewall from a CA problem."""
    if isinstance(error, TimeoutError):  # socket.timeout is TimeoutError
        return "timeout"
    if isinstance(error, ssl.SSLCertVerificationError):
        return "certificateRejected"
    return "connectionFailed"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
