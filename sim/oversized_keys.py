"""Huge RSA keys in milliseconds, and cloud SAM files holding them: the worst case a parser's bounds are tested with.

Why not `rsa.generate_private_key(65537, 8192)`: finding two 4096-bit primes takes seconds to minutes, at
random, on a busy 2-core machine. These keys are built from published primes instead: RFC 3526's MODP
groups and RFC 7919's FFDHE groups, whose primes are defined by formulas over π and e (computed here, no
table to mistype). Each key is a real RSA key, so OpenSSL's consistency check (primality tests of p and q)
costs on it what it costs on any key of its size; that cost is what the console must never pay for a file
from outside. Test keys only: their primes are public, so they protect nothing.
"""

from __future__ import annotations

import datetime
import functools
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from broker.credentials.cloud_sam_file import FORMAT, MAGIC

_MODP_OFFSETS = {2048: 124476, 4096: 240904, 8192: 4743158}
"""RFC 3526: p = 2^b - 2^(b-64) - 1 + 2^64 * (floor(2^(b-130) * pi) + offset)."""
_FFDHE_OFFSETS = {2048: 560316, 4096: 5736041, 8192: 10965728}
"""RFC 7919: p = 2^b - 2^(b-64) + (floor(2^(b-130) * e) + offset) * 2^64 - 1."""
_GUARD_BITS = 64


def _arctan_inverse(x: int, one: int) -> int:
    """atan(1/x) scaled by `one`, by its series, in integers."""
    total, term, n, sign = 0, one // x, 1, 1
    while term:
        total += sign * (term // n)
        term //= x * x
        n += 2
        sign = -sign
    return total


@functools.cache
def _pi_scaled(bits: int) -> int:
    """floor(2^bits * pi), by Machin's formula with guard bits."""
    one = 1 << (bits + _GUARD_BITS)
    pi = 16 * _arctan_inverse(5, one) - 4 * _arctan_inverse(239, one)
    return pi >> _GUARD_BITS


@functools.cache
def _e_scaled(bits: int) -> int:
    """floor(2^bits * e), by the series of 1/k!."""
    one = 1 << (bits + _GUARD_BITS)
    total, term, k = 0, one, 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> _GUARD_BITS


def modp_prime(bits: int) -> int:
    """RFC 3526's `bits`-bit MODP prime."""
    return (1 << bits) - (1 << (bits - 64)) - 1 + ((_pi_scaled(bits - 130) + _MODP_OFFSETS[bits]) << 64)


def ffdhe_prime(bits: int) -> int:
    """RFC 7919's `bits`-bit FFDHE prime."""
    return (1 << bits) - (1 << (bits - 64)) + ((_e_scaled(bits - 130) + _FFDHE_OFFSETS[bits]) << 64) - 1


@functools.cache
def oversized_rsa_key(bits: int) -> rsa.RSAPrivateKey:
    """A real RSA key of `bits` bits (4096, 8192 or 16384: two published primes), made in milliseconds."""
    p, q = modp_prime(bits // 2), ffdhe_prime(bits // 2)
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q))
    # Skip the library's check here: it is the slow part, and what the console must not do on such a key.
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@functools.cache
def _issuer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate_for(key: rsa.RSAPrivateKey, sam_id: str) -> x509.Certificate:
    """CN = samId, signed by a throwaway EC key (signing with the huge key itself would be slow)."""
    issuer = _issuer()
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sam_id)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oversized-key test issuer")]))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(issuer, hashes.SHA256())
    )


def oversized_sam_file(bits: int, sam_id: str = "901000000919", hospital_id: str = "777777777") -> bytes:
    """A cloud SAM file shaped like the DC simulator's, holding an RSA key of `bits` bits and its certificate."""
    key = oversized_rsa_key(bits)
    document = {
        "format": FORMAT,
        "samId": sam_id,
        "hospitalId": hospital_id,
        "hospitalName": "測試機構",
        "hospitalShortName": "測試機構",
        "privateKey": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii"),
        "certificate": certificate_for(key, sam_id).public_bytes(serialization.Encoding.PEM).decode("ascii"),
    }
    return MAGIC + json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
