"""An RSA private key's size, read from its DER structure before any library looks at the numbers. Pure.

Why: `load_pem_private_key` checks an RSA key's consistency (OpenSSL's `RSA_check_key`: primality tests of
p and q, then n = p·q), which for a 16384-bit key takes seconds to tens of seconds, in the broker's only
thread, for a file any program on the machine can send (`POST /api/settings/v1/CloudSam`). Reading the
modulus's length from the DER costs a few comparisons whatever the key's size, so a key too large is refused
before those checks, and a key that passes has numbers no larger than its modulus (a 2048-bit modulus with a
huge p would otherwise still make the library test a huge prime).

Only the two unencrypted RSA forms are read: PKCS#8 (`PRIVATE KEY`, rsaEncryption) and PKCS#1
(`RSA PRIVATE KEY`), two primes. Anything else is refused here, which is stricter than the library (an EC
or DSA key, a multi-prime RSA key): a cloud SAM file's key is RSA-2048, so nothing usable is lost. The DER
handed back is what the caller loads, so what was measured is exactly what is loaded.

Errors are `KeyShapeRefused` with a fixed message that never quotes the input (the key is a secret).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

MAX_RSA_BITS: Final = 4096
"""The largest RSA key any parser here lets through to the library's checks; past it, refused at once."""

_PEM_LABEL: Final = re.compile(rb"[A-Z ]{1,40}")
_RSA_ENCRYPTION_OID: Final = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1, content octets
_SEQUENCE, _INTEGER, _OCTET_STRING, _OID, _NULL = 0x30, 0x02, 0x04, 0x06, 0x05
_RSA_FIELDS: Final = 8
"""n, e, d, p, q, d mod (p-1), d mod (q-1), q⁻¹ mod p: after the version, in RSAPrivateKey (RFC 8017 A.1.2)."""


class KeyShapeRefused(ValueError):
    """Not an unencrypted two-prime RSA private key of a size we accept; the message quotes nothing."""


class KeyTooLarge(KeyShapeRefused):
    """A well-formed RSA key whose modulus has more bits than allowed."""


@dataclass(frozen=True)
class RsaKeyShape:
    """What the structure says, before any number is checked: the modulus's bits, its value, and the DER."""

    bits: int
    modulus: int
    der: bytes

    def __repr__(self) -> str:  # the DER is the private key
        return f"RsaKeyShape(bits={self.bits})"


def rsa_key_shape(pem: bytes, max_bits: int = MAX_RSA_BITS) -> RsaKeyShape:
    """The key's size from its PEM's structure: cost linear in the PEM's length, no arithmetic on its numbers.

    Raises `KeyShapeRefused` for anything but one unencrypted RSA private key whose modulus has at most
    `max_bits` bits and whose other numbers are no longer than it.
    """
    label, body = _first_pem_block(pem)
    if label not in (b"PRIVATE KEY", b"RSA PRIVATE KEY"):
        if label == b"ENCRYPTED PRIVATE KEY":
            raise KeyShapeRefused("not an unencrypted PEM key")
        raise KeyShapeRefused("not an RSA key")
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyShapeRefused("not an unencrypted PEM key") from None
    reader = _Der(der)
    outer = reader.element(_SEQUENCE)
    reader.end()
    rsa_key = _pkcs8_inner(outer) if label == b"PRIVATE KEY" else outer
    modulus = _rsa_private_key_modulus(rsa_key, max_bits)
    return RsaKeyShape(modulus.bit_length(), modulus, der)


def _first_pem_block(pem: bytes) -> tuple[bytes, bytes]:
    """The first PEM block's label and body, in two `find`s: linear whatever the text (a regular expression
    with a lazy body took 170 ms on 16 KiB of BEGIN lines without an END, trying each BEGIN in turn)."""
    begin = pem.find(b"-----BEGIN ")
    label_end = pem.find(b"-----", begin + 11) if begin >= 0 else -1
    if label_end < 0:
        raise KeyShapeRefused("not an unencrypted PEM key")
    label = pem[begin + 11 : label_end]
    if not _PEM_LABEL.fullmatch(label):
        raise KeyShapeRefused("not an unencrypted PEM key")
    body_start = label_end + 5
    end = pem.find(b"-----END " + label + b"-----", body_start)
    if end < 0:
        raise KeyShapeRefused("not an unencrypted PEM key")
    return label, pem[body_start:end]


def _pkcs8_inner(content: bytes) -> bytes:
    """PrivateKeyInfo (RFC 5208): version, AlgorithmIdentifier (rsaEncryption), OCTET STRING of RSAPrivateKey."""
    reader = _Der(content)
    if reader.element(_INTEGER) not in (b"\x00", b"\x01"):
        raise KeyShapeRefused("not a PKCS#8 key")
    algorithm = _Der(reader.element(_SEQUENCE))
    if algorithm.element(_OID) != _RSA_ENCRYPTION_OID:
        raise KeyShapeRefused("not an RSA key")
    if not algorithm.done():
        if algorithm.element(_NULL) != b"":
            raise KeyShapeRefused("not an RSA key")
        algorithm.end()
    inner = _Der(reader.element(_OCTET_STRING))
    key = inner.element(_SEQUENCE)
    inner.end()
    return key  # optional attributes and public key may follow in `reader`: the library reads them


def _rsa_private_key_modulus(content: bytes, max_bits: int) -> int:
    """RSAPrivateKey's modulus, after checking the sizes of all its numbers (and nothing else)."""
    reader = _Der(content)
    if reader.element(_INTEGER) != b"\x00":
        raise KeyShapeRefused("not a two-prime RSA key")  # version 1 is multi-prime
    numbers = [reader.element(_INTEGER) for _ in range(_RSA_FIELDS)]
    reader.end()
    longest = max_bits // 8 + 1  # content octets of a positive integer of max_bits bits, with a sign octet
    modulus_octets = numbers[0]
    if len(modulus_octets) > longest:
        raise KeyTooLarge(f"larger than {max_bits} bits")
    modulus = int.from_bytes(modulus_octets, "big", signed=True)
    if modulus <= 0:
        raise KeyShapeRefused("not an RSA key")
    if modulus.bit_length() > max_bits:
        raise KeyTooLarge(f"larger than {max_bits} bits")
    if any(len(number) > len(modulus_octets) for number in numbers[1:]):
        raise KeyShapeRefused("not an RSA key")  # every other number is below n: none may be longer
    return modulus


class _Der:
    """A cursor over DER content: single-octet tags, definite lengths, every length checked against the bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def done(self) -> bool:
        return self._at >= len(self._data)

    def end(self) -> None:
        if not self.done():
            raise KeyShapeRefused("not a DER key")

    def element(self, tag: int) -> bytes:
        """The content of the next element, which must have `tag`."""
        data, at = self._data, self._at
        if at + 2 > len(data) or data[at] != tag:
            raise KeyShapeRefused("not a DER key")
        first = data[at + 1]
        at += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 3 or at + count > len(data):  # indefinite, or over 16 MiB: no key is
                raise KeyShapeRefused("not a DER key")
            length = int.from_bytes(data[at : at + count], "big")
            at += count
        if at + length > len(data):
            raise KeyShapeRefused("not a DER key")
        self._at = at + length
        return data[at : at + length]
