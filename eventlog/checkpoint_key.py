"""The installation's checkpoint key: an Ed25519 private key in one file of the data dir, never shown.

Why a key of its own rather than the pseudonym key: a signing key that signs only checkpoints cannot be
tricked into signing anything else, and its public half can be handed to an auditor without telling anyone
anything about pseudonyms.

The file (`<data dir>/secrets/checkpoint.key`, deploy/paths.py) holds the 32-byte Ed25519 private key (RFC 8032's
seed) and nothing else. It is made on first use as the pseudonym key is (broker/domain/pseudonyms.py): mode 0600
from its creation, fsynced, then linked into place so that two processes making it at once never replace each
other's key (the loser reads the winner's). No function here returns, logs or quotes the key's bytes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from eventlog.durable_files import fsync_directory

KEY_BYTES: Final = 32


class KeyUnreadable(RuntimeError):
    """The key file is there but is not a key this code can use (its contents are never quoted)."""


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The existing key; FileNotFoundError if there is none yet (a verifier must not make one)."""
    data = Path(path).read_bytes()
    if len(data) != KEY_BYTES:
        raise KeyUnreadable(f"{path} is not a checkpoint key (expected {KEY_BYTES} bytes, found {len(data)})")
    return Ed25519PrivateKey.from_private_bytes(data)


def load_or_create_signing_key(path: Path, owner_of: Path | None = None) -> Ed25519PrivateKey:
    """The installation's key, made on first use (0600, linked into place: never replaces one made meanwhile).

    `owner_of`: when this process is root, what it makes (the key, and its directory if it makes that) is
    given to the owner of that directory (the data dir), so that an administrator's first `log checkpoint`
    does not leave a key the console's own user cannot read.
    """
    path = Path(path)
    try:
        return load_signing_key(path)
    except FileNotFoundError:
        pass
    owner = _owner(owner_of)
    made_dir = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if made_dir and owner is not None:
        os.chown(path.parent, *owner)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, secrets.token_bytes(KEY_BYTES))
        os.fsync(descriptor)
        if owner is not None:
            os.fchown(descriptor, *owner)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)  # never replaces a key another process made first
        fsync_directory(path.parent)  # a key lost to a power cut would leave checkpoints no one can match
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return load_signing_key(path)


def _owner(directory: Path | None) -> tuple[int, int] | None:
    """(uid, gid) of `directory` when we are root and it belongs to someone else; else None (nothing to give)."""
    if directory is None or os.geteuid() != 0:
        return None
    try:
        status = os.stat(directory)
    except OSError:
        return None
    if status.st_uid == 0:
        return None
    return status.st_uid, status.st_gid
