"""The bench's virtual staff card (醫事人員卡, HCA card).

The real card's application id, data layout and authentication are not
public; everything here is the bench's own and documented in
docs/virtual-cards.md. What it keeps from real cards is the behaviour the
console has to handle: a PIN with a retry counter that blocks, a PUK to
unblock it, an RSA-2048 signing key usable only after the PIN, and an X.509
certificate read in chunks.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from sim.cards.apdu import (
    SW_AUTHENTICATION_METHOD_BLOCKED,
    SW_CONDITIONS_OF_USE_NOT_SATISFIED,
    SW_OK,
    SW_SECURITY_STATUS_NOT_SATISFIED,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    BenchCard,
    CommandApdu,
    PinReference,
    is_digits,
    respond,
)
from sim.cards.base import HPC_AID
from sim.profiles import Profile, StaffCardData

STAFF_CARD_ATR = bytes.fromhex("3B 89 80 01 80 57 42 45 4E 43 48 48 50 85".replace(" ", ""))
"""T=0/T=1 ATR; historical bytes: category 80, compact-TLV issuer data "BENCHHP"; last byte the TCK."""

STAFF_BLOCK_LENGTH = 71
CERTIFICATE_EF = bytes.fromhex("5001")
PIN_P2 = 0x81
PIN_MAX_TRIES = 3
PUK_MAX_TRIES = 10
PUK_LENGTH = 8


def staff_data_block(data: StaffCardData) -> bytes:
    """The bench's layout (real cards' is not public): fixed positions, so the console parses it like the
    health card's block. Birthday is stored `YYYYMMDD`; the API shows `YYYY-MM-DD`."""
    block = (
        data.card_id.encode("ascii")
        + data.id_no.encode("ascii")
        + data.c_name.encode("big5").ljust(20, b"\x00")
        + data.e_name.encode("ascii").ljust(20, b"\x00")
        + data.birthday.replace("-", "").encode("ascii")
        + str(data.card_type).encode("ascii")
    )
    if len(block) != STAFF_BLOCK_LENGTH:  # the profile's own checks should make this impossible
        raise ValueError(f"staff card {data.card_id!r}: the data block would be {len(block)} bytes")
    return block


class StaffCard(BenchCard):
    """A staff card in a reader. Its key and certificate come from the bench PKI (sim.pki), so the
    console can check the chain, expiry and revocation the way it would for a real card."""

    atr = STAFF_CARD_ATR
    pin_p2 = PIN_P2
    aid = HPC_AID

    def __init__(self, profile: Profile) -> None:
        data = profile.data
        if profile.kind != "hpc" or not isinstance(data, StaffCardData):
            raise ValueError(f"profile {profile.name!r} is not a staff card")
        from sim.pki import bench_pki  # the PKI reads the profiles; importing it here keeps imports acyclic

        key, certificate = bench_pki().staff[profile.name]
        super().__init__(
            data.card_id,
            files={CERTIFICATE_EF: certificate.public_bytes(serialization.Encoding.DER)},
        )
        self.profile = profile
        self._signing_key = key
        self._block = staff_data_block(data)
        self._pin = PinReference(data.pin, PIN_MAX_TRIES, data.pin_tries_left)
        self._puk = PinReference(data.puk, PUK_MAX_TRIES, data.puk_tries_left)
        self._handlers.update(
            {
                0xCA: self._get_data,
                0x20: self._verify,
                0x24: self._change_reference_data,
                0x2C: self._reset_retry_counter,
                0x2A: self._perform_security_operation,
            }
        )

    @property
    def pin_tries_left(self) -> int:
        return self._pin.tries_left

    @property
    def puk_tries_left(self) -> int:
        return self._puk.tries_left

    def _get_data(self, command: CommandApdu) -> bytes:
        if command.p1 != 0x12 or command.p2 != 0x00:
            return self._sw(SW_WRONG_P1P2)
        refused = self._get_data_block_guard(command)
        if refused is not None:
            return refused
        return respond(self._block, SW_OK)

    def _change_reference_data(self, command: CommandApdu) -> bytes:
        refused = self._pin_command_guard(command, 0x01)
        if refused is not None:
            return refused
        if not command.data:
            return self._sw(SW_WRONG_LENGTH)
        if self._pin.blocked:
            return self._sw(SW_AUTHENTICATION_METHOD_BLOCKED)
        if not self._pin.verified:
            return self._sw(SW_SECURITY_STATUS_NOT_SATISFIED)
        if not is_digits(command.data, 4, 8):
            return self._sw(SW_WRONG_DATA)
        self._pin.replace(command.data.decode("ascii"), verified=True)
        return self._sw(SW_OK)

    def _reset_retry_counter(self, command: CommandApdu) -> bytes:
        """PUK + new PIN. The new PIN's format is checked before the PUK, so a typo in the new PIN does
        not cost a PUK try. The new PIN is not verified by this: the holder verifies it next."""
        refused = self._pin_command_guard(command, 0x00)
        if refused is not None:
            return refused
        if not PUK_LENGTH + 4 <= len(command.data) <= PUK_LENGTH + 8:
            return self._sw(SW_WRONG_LENGTH)
        puk, new_pin = command.data[:PUK_LENGTH], command.data[PUK_LENGTH:]
        if not is_digits(new_pin, 4, 8):
            return self._sw(SW_WRONG_DATA)
        outcome = self._puk.verify(puk)
        self._puk.verified = False  # the PUK opens nothing beyond this one command
        if outcome != SW_OK:
            return self._sw(outcome)
        self._pin.replace(new_pin.decode("ascii"), verified=False)
        return self._sw(SW_OK)

    def _perform_security_operation(self, command: CommandApdu) -> bytes:
        """PSO: COMPUTE DIGITAL SIGNATURE over a SHA-256 digest the host computed (RSA PKCS#1 v1.5)."""
        if command.p1 != 0x9E or command.p2 != 0x9A:
            return self._sw(SW_WRONG_P1P2)
        if not self._selected:
            return self._sw(SW_CONDITIONS_OF_USE_NOT_SATISFIED)
        if len(command.data) != 32:
            return self._sw(SW_WRONG_LENGTH)
        if not self._pin.verified:
            return self._sw(SW_SECURITY_STATUS_NOT_SATISFIED)
        signature = self._signing_key.sign(command.data, PKCS1v15(), Prehashed(hashes.SHA256()))
        return respond(signature, SW_OK)
