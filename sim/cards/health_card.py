"""The bench's virtual health card (健保卡).

The public data block is answered exactly as real cards answer it, so the
console's parser is tested against the real layout. The mutual authentication
that guards the identity data is the bench's own (sim.cards.card_keys): the
NHI's scheme is secret. The APDUs are listed in docs/virtual-cards.md.
"""

from __future__ import annotations

from sim.cards.apdu import (
    SW_AUTHENTICATION_METHOD_BLOCKED,
    SW_NO_CURRENT_EF,
    SW_OK,
    SW_REFERENCED_DATA_NOT_FOUND,
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
from sim.cards.base import HC_AID
from sim.profiles import HealthCardData, Profile

HEALTH_CARD_ATR = bytes.fromhex("3B 89 80 01 80 57 42 45 4E 43 48 48 43 96".replace(" ", ""))
"""T=0/T=1 ATR; historical bytes: category 80, compact-TLV issuer data "BENCHHC"; last byte the TCK.

The real cards' ATR is not reproduced: the console tells cards apart by SELECT, not by ATR."""

PUBLIC_BLOCK_LENGTH = 57
PIN_MAX_TRIES = 3
PIN_P2 = 0x01
NOTES_EF = bytes.fromhex("0102")
"""The bench's notes file: what `POST /api/hc/v1/RealHc/Update` writes (the real cards' files are not public)."""
NOTES_MAX = 200


def public_data_block(data: HealthCardData) -> bytes:
    """The 57 bytes real cards answer to `00 CA 11 00 02 00 00`: fixed positions, name in Big5, NUL-padded."""
    block = (
        data.card_id.encode("ascii")
        + data.name.encode("big5").ljust(20, b"\x00")
        + data.id_no.encode("ascii")
        + data.birthday.encode("ascii")
        + data.sex.encode("ascii")
        + data.date_issue.encode("ascii")
    )
    if len(block) != PUBLIC_BLOCK_LENGTH:  # the profile's own checks should make this impossible
        raise ValueError(f"health card {data.card_id!r}: the data block would be {len(block)} bytes")
    return block


class HealthCard(BenchCard):
    """A health card in a reader. The PIN is optional (4 to 6 digits) and has no PUK: a blocked health
    card PIN stays blocked, as on real cards (they are unblocked at an NHI office)."""

    atr = HEALTH_CARD_ATR
    pin_p2 = PIN_P2
    aid = HC_AID

    def __init__(self, profile: Profile) -> None:
        data = profile.data
        if profile.kind != "hc" or not isinstance(data, HealthCardData):
            raise ValueError(f"profile {profile.name!r} is not a health card")
        super().__init__(data.card_id, files={NOTES_EF: b""})
        self.profile = profile
        self._public_block = public_data_block(data)
        self._identity_status = data.identity_status.encode("ascii")
        self._pin = PinReference(data.pin, PIN_MAX_TRIES)
        self._handlers.update(
            {
                0xCA: self._get_data,
                0x20: self._verify,
                0x24: self._change_reference_data,
                0x26: self._disable_verification,
                0xD6: self._update_binary,
            }
        )

    @property
    def has_pin(self) -> bool:
        return self._pin.is_set

    @property
    def notes(self) -> bytes:
        return self._files[NOTES_EF]

    def _update_binary(self, command: CommandApdu) -> bytes:
        """Replace the notes file (offset 0 only), for a host that authenticated with the SAM."""
        if command.p1 or command.p2:
            return self._sw(SW_WRONG_P1P2)
        if not command.data or len(command.data) > NOTES_MAX or command.le is not None:
            return self._sw(SW_WRONG_LENGTH)
        if self._current_ef != NOTES_EF:
            return self._sw(SW_NO_CURRENT_EF)
        if not self._authenticated:
            return self._sw(SW_SECURITY_STATUS_NOT_SATISFIED)
        self._files[NOTES_EF] = bytes(command.data)
        return self._sw(SW_OK)

    def _get_data(self, command: CommandApdu) -> bytes:
        """P2 00: the public block, for anyone. P2 01: the identity status, only after mutual authentication
        (on real cards that data is read through the SAM)."""
        if command.p1 != 0x11 or command.p2 not in (0x00, 0x01):
            return self._sw(SW_WRONG_P1P2)
        refused = self._get_data_block_guard(command)
        if refused is not None:
            return refused
        if command.p2 == 0x00:
            return respond(self._public_block, SW_OK)
        if not self._authenticated:
            return self._sw(SW_SECURITY_STATUS_NOT_SATISFIED)
        return respond(self._identity_status, SW_OK)

    def _change_reference_data(self, command: CommandApdu) -> bytes:
        """Change the PIN after verifying it; or set one on a card that has none, which needs no
        verification (there is nothing to verify). Either way the new PIN counts as verified: the holder
        just typed it."""
        refused = self._pin_command_guard(command, 0x01)
        if refused is not None:
            return refused
        if not command.data:
            return self._sw(SW_WRONG_LENGTH)
        if self._pin.is_set:
            if self._pin.blocked:
                return self._sw(SW_AUTHENTICATION_METHOD_BLOCKED)
            if not self._pin.verified:
                return self._sw(SW_SECURITY_STATUS_NOT_SATISFIED)
        if not is_digits(command.data, 4, 6):
            return self._sw(SW_WRONG_DATA)
        self._pin.replace(command.data.decode("ascii"), verified=True)
        return self._sw(SW_OK)

    def _disable_verification(self, command: CommandApdu) -> bytes:
        """Remove the PIN. Only a holder who just verified it may."""
        refused = self._pin_command_guard(command, 0x00)
        if refused is not None:
            return refused
        if command.data:
            return self._sw(SW_WRONG_LENGTH)
        if not self._pin.is_set:
            return self._sw(SW_REFERENCED_DATA_NOT_FOUND)
        if self._pin.blocked:
            return self._sw(SW_AUTHENTICATION_METHOD_BLOCKED)
        if not self._pin.verified:
            return self._sw(SW_SECURITY_STATUS_NOT_SATISFIED)
        self._pin.replace(None, verified=False)
        return self._sw(SW_OK)
