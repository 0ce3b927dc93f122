"""Cloud SAM files (format `nhi-console-sim-sam/1`, docs/dc-protocol.md): parse, check, sign. Pure.

The real cloud SAM file format is not public; this is ours, which the bench's
DC simulator issues. A licensed parser would replace this module. The file
holds the SAM's private key: nothing here ever puts its content, or any
field's value, into an exception message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from broker.credentials.rsa_key_shape import MAX_RSA_BITS, KeyShapeRefused, KeyTooLarge, rsa_key_shape
from contract.text import CONTROL_CHARACTERS

MAGIC = b"NHICSAM1\n"
FORMAT = "nhi-console-sim-sam/1"
LOGIN_SIGNATURE_PREFIX = b"nhi-console-dc-login\x00"
MAX_FILE_BYTES = 48 * 1024
"""A file is a key and a certificate, a few KiB; anything much larger is not one."""
KEY_BITS = 2048
"""The SAM's key; anything else is refused from its DER structure, before the library checks its numbers."""

_SAM_ID = re.compile(r"^[0-9]{12}$")  # [0-9], not \d: that takes other scripts' digits too
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""What JSON's `\\ud800` escape decodes to: no reply (UTF-8, msgpack) can carry it."""
_HOSPITAL_ID = re.compile(r"^[0-9A-Za-z]{1,10}$")


class CloudSamFileInvalid(ValueError):
    """Not a cloud SAM file this console can use (1610); the message names the field, never its value."""


@dataclass(frozen=True)
class CloudSamFile:
    sam_id: str
    hospital_id: str
    hospital_name: str
    hospital_short_name: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256: 256 bytes, verifiable with `certificate`."""
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def login_signature(self, nonce: bytes) -> bytes:
        return self.sign(login_signed_bytes(self.sam_id, nonce))


def login_signed_bytes(sam_id: str, nonce: bytes) -> bytes:
    """What the SAM signs to log in at the DC (the DC recomputes it to check the signature)."""
    return LOGIN_SIGNATURE_PREFIX + sam_id.encode("ascii") + nonce


def decode_context(text: str) -> bytes:
    """`cloudSamContext`: strict standard base64 (whitespace tolerated), else 1610."""
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CloudSamFileInvalid("cloudSamContext is not valid base64") from None
    if not raw:
        raise CloudSamFileInvalid("cloudSamContext is empty")
    return raw


def _text(document: dict[str, object], name: str, pattern: re.Pattern[str] | None = None, longest: int = 64) -> str:
    value = document.get(name)
    if (
        not isinstance(value, str)
        or not value
        or len(value) > longest
        or CONTROL_CHARACTERS.search(value)
        or _LONE_SURROGATE.search(value)
    ):
        raise CloudSamFileInvalid(f"the file's {name} is missing or malformed")
    if pattern is not None and not pattern.match(value):
        raise CloudSamFileInvalid(f"the file's {name} is malformed")
    return value


def _pem(document: dict[str, object], name: str) -> bytes:
    value = document.get(name)
    if not isinstance(value, str) or not value.isascii() or not 0 < len(value) <= 16 * 1024:
        raise CloudSamFileInvalid(f"the file's {name} is missing or malformed")
    return value.encode("ascii")


def parse_cloud_sam_file(raw: bytes) -> CloudSamFile:
    if len(raw) > MAX_FILE_BYTES:
        raise CloudSamFileInvalid("the file is too large to be a cloud SAM file")
    if not raw.startswith(MAGIC):
        raise CloudSamFileInvalid("not a cloud SAM file (wrong header)")
    try:
        document = json.loads(raw[len(MAGIC) :].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: nesting too deep
        raise CloudSamFileInvalid("the file's body is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise CloudSamFileInvalid("the file's body is not a JSON object")
    if document.get("format") != FORMAT:
        raise CloudSamFileInvalid(f"the file's format is not {FORMAT}")
    sam_id = _text(document, "samId", _SAM_ID)
    hospital_id = _text(document, "hospitalId", _HOSPITAL_ID)
    hospital_name = _text(document, "hospitalName")
    short_name = _text(document, "hospitalShortName")
    key_pem = _pem(document, "privateKey")
    certificate_pem = _pem(document, "certificate")
    # Sizes first, costly checks last (issue 19): the key's size is read from its DER structure, and the
    # certificate's key compared with it, before the library checks the key's primes (seconds for a
    # 16k-bit key); a key that reaches them has a 2048-bit modulus, its certificate's.
    try:
        shape = rsa_key_shape(key_pem, MAX_RSA_BITS)
    except KeyTooLarge:
        raise CloudSamFileInvalid(f"the file's privateKey is larger than {MAX_RSA_BITS} bits") from None
    except KeyShapeRefused:
        raise CloudSamFileInvalid("the file's privateKey is not an unencrypted PEM RSA key") from None
    if shape.bits != KEY_BITS:
        raise CloudSamFileInvalid("the file's privateKey is not an RSA-2048 key")
    try:
        # The library parses the key and the subject only when asked: they fail here or not at all.
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        certificate_key = certificate.public_key()
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm):  # InvalidVersion is not a ValueError
        raise CloudSamFileInvalid("the file's certificate is not a PEM X.509 certificate") from None
    if not isinstance(certificate_key, rsa.RSAPublicKey) or certificate_key.public_numbers().n != shape.modulus:
        raise CloudSamFileInvalid("the file's certificate is not for its key")
    try:
        key = serialization.load_der_private_key(shape.der, password=None)  # the very bytes measured above
    except (ValueError, TypeError, UnsupportedAlgorithm):  # UnsupportedAlgorithm: an unknown key type's OID
        raise CloudSamFileInvalid("the file's privateKey is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != KEY_BITS:
        raise CloudSamFileInvalid("the file's privateKey is not an RSA-2048 key")
    if certificate_key.public_numbers() != key.public_key().public_numbers():
        raise CloudSamFileInvalid("the file's certificate is not for its key")
    if len(names) != 1 or names[0].value != sam_id:
        raise CloudSamFileInvalid("the file's certificate is not issued to its samId")
    return CloudSamFile(sam_id, hospital_id, hospital_name, short_name, key, certificate)


def verify_signature(certificate: x509.Certificate, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is the certificate's key's RSASSA-PKCS1-v1_5 SHA-256 signature of `data`."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
