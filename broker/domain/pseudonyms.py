"""Keyed hashes for card numbers and ID numbers: an auditor can follow one card through the log,
and the log never holds the number itself.

The key is per installation (a file in the data dir, mode 0600, never logged):
the same card gives the same pseudonym in one installation and unrelated
pseudonyms in two, and without the key the numbers cannot be recovered by
hashing every possible card number (there are only about 10^12).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from eventlog.durable_files import fsync_directory

KEY_BYTES = 32


class Pseudonyms:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key is at least 16 bytes")
        self._key = key

    def _tag(self, domain: bytes, value: str) -> str:
        digest = hmac.new(self._key, domain + b"\0" + value.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:32]

    def card(self, card_number: str) -> str:
        """`card:` + 128 bits of HMAC: stable per installation, unlinkable across installations."""
        return "card:" + self._tag(b"card", card_number)

    def person(self, id_number: str) -> str:
        return "person:" + self._tag(b"person", id_number)


def load_key(path: Path) -> bytes:
    """The installation's key as it is, never made: an auditor's lookup (`log card`) must not mint a key that
    would match nothing in the log (FileNotFoundError when the console never made one)."""
    return path.read_bytes()


def load_or_create_key(path: Path) -> bytes:
    """The installation's key, made on first use with mode 0600 from its creation."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(KEY_BYTES)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, key)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)  # never replaces a key another process made first
        fsync_directory(path.parent)  # a key lost to a power cut would unlink every pseudonym before it
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes()
