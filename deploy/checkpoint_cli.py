"""`nhi-console log checkpoint` and `log verify --since`: signed chain heads kept off the machine, and the proof
that today's log extends them (eventlog/checkpoints.py defines the statement; docs/audit.md, "Checkpoints").

`log checkpoint` prints one statement (and appends it to a file with `--append`), signed with the installation's
key, made on first use; `--public-key` prints the key's public half for the auditor to keep.

`log verify --since CHECKPOINT` checks each statement's signature (the auditor's public key with `--public-key
FILE`, else the installation's own), walks both chains as `log verify` does, then compares each chain's stored
hash at each checkpoint's seq with the checkpoint's. Exit status: 0 the log extends every checkpoint and its
chains are intact; 1 it does not (or the walk found a problem); 2 a checkpoint or the key could not be
checked (unparseable, another version, a signature that does not verify) and nothing proved tampering.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deploy.paths import console_paths
from eventlog import checkpoints
from eventlog.checkpoint_key import KeyUnreadable, load_or_create_signing_key, load_signing_key
from eventlog.checkpoints import Chain, CheckpointError, SignedCheckpoint, Standing
from eventlog.sqlite_store import archive_path, load_segments, open_read_only, segment_last_hash, segment_range
from eventlog.store import SegmentInfo

CANNOT_VERIFY: Final = 2
SHOWN_FAILURES: Final = 20
"""Failing checkpoints listed per chain: a year of hourly ones would otherwise flood the terminal."""


def add_checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    """`log checkpoint`'s options (log_cli.py registers the command)."""
    parser.add_argument("--append", type=Path, metavar="FILE", help="also append the statement to FILE")
    parser.add_argument(
        "--public-key", action="store_true", help="print the key's public half (and its id) instead, for the auditor"
    )


def add_since_arguments(parser: argparse.ArgumentParser) -> None:
    """`log verify`'s checkpoint options."""
    parser.add_argument(
        "--since",
        metavar="CHECKPOINT",
        help="a checkpoint line, or a file of them (`-`: standard input): prove the log extends each one",
    )
    parser.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help="the public key the auditor kept (default: this installation's own key)",
    )


# -- log checkpoint ----------------------------------------------------------------------------------------------


def checkpoint_command(args: argparse.Namespace) -> int:
    paths = console_paths(args.data_dir, sim=args.sim)
    try:
        key = load_or_create_signing_key(paths.checkpoint_key, owner_of=paths.data_dir)
    except (OSError, KeyUnreadable) as error:
        print(f"cannot use the checkpoint key: {_reason(error)}", file=sys.stderr)
        return CANNOT_VERIFY
    if args.public_key:
        public = key.public_key()
        print(f"# nhi-console checkpoint key {checkpoints.key_id(public)} (Ed25519): keep it off this machine")
        print(checkpoints.public_key_pem(public), end="")
        return 0
    database = paths.database
    if not database.exists():
        raise SystemExit(f"no event log at {database}")
    try:
        heads = read_heads(database)
    except sqlite3.Error as error:
        print(f"cannot read the chain heads of {database}: {error}", file=sys.stderr)
        return CANNOT_VERIFY
    line = checkpoints.make(key, time.time_ns(), heads["events"], heads["calls"]).render()
    if args.append is not None:
        append_line(args.append, line)
    print(line)
    return 0


def read_heads(database: Path) -> dict[Chain, checkpoints.ChainPosition]:
    """Both chains' committed heads (`chain_heads`), read-only."""
    conn = open_read_only(database)
    try:
        rows = conn.execute("SELECT name, seq, hash FROM chain_heads").fetchall()
    finally:
        conn.close()
    heads = {name: checkpoints.ChainPosition(seq, bytes(digest)) for name, seq, digest in rows}
    if set(heads) != set(checkpoints.CHAINS):
        raise sqlite3.DatabaseError("chain_heads must hold exactly 'events' and 'calls'")
    return {chain: heads[chain] for chain in checkpoints.CHAINS}


def append_line(path: Path, line: str) -> None:
    """One line at the end of `path`, on disk before this returns (O_APPEND: two writers never interleave)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode("ascii"))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _reason(error: BaseException) -> str:
    """An error's text for a person: a path and what is wrong (these errors never carry key material)."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error) or type(error).__name__


# -- log verify --since ------------------------------------------------------------------------------------------


@dataclass
class Since:
    """The checkpoints to compare with (signatures checked) and those that could not be checked, by label."""

    key_id: str
    verified: list[tuple[str, SignedCheckpoint]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    skipped_lines: int = 0
    own_key: bool = False


def read_since(args: argparse.Namespace) -> Since | None:
    """The checkpoints `--since` names, each signature checked; None (having said why) if none can be checked."""
    try:
        public = _public_key(args)
    except CheckpointError as error:
        print(f"CANNOT VERIFY: {error}")
        return None
    since = Since(key_id=checkpoints.key_id(public), own_key=args.public_key is None)
    try:
        lines = _checkpoint_lines(args.since)
    except CheckpointError as error:
        print(f"CANNOT VERIFY: {error}")
        return None
    for label, line in lines:
        statement = checkpoints.find_statement(line)
        if statement is None:
            since.skipped_lines += 1
            continue
        try:
            signed = checkpoints.parse(statement)
            checkpoints.verify_signature(signed, public)
        except CheckpointError as error:
            since.refused.append((label, str(error)))
            continue
        since.verified.append((label, signed))
    for label, reason in since.refused[:SHOWN_FAILURES]:
        print(f"CANNOT VERIFY {label}: {reason}")
    if len(since.refused) > SHOWN_FAILURES:
        print(f"  and {len(since.refused) - SHOWN_FAILURES} more that cannot be verified")
    if not since.verified:
        if not since.refused:
            print(f"CANNOT VERIFY: no checkpoint in {args.since}")
        return None
    return since


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey:
    if args.public_key is not None:
        try:
            text = args.public_key.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            raise CheckpointError(f"cannot read the public key: {_reason(error)}") from None
        return checkpoints.load_public_key(text)
    path = console_paths(args.data_dir, sim=args.sim).checkpoint_key
    try:
        return load_signing_key(path).public_key()
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint key at {path}: give the public key the auditor kept with --public-key FILE"
        ) from None
    except (OSError, KeyUnreadable) as error:
        raise CheckpointError(f"cannot read the checkpoint key: {_reason(error)}") from None


def _checkpoint_lines(since: str) -> list[tuple[str, str]]:
    """(label, line) for the statement given itself, or each line of the file (`-`: standard input) it names."""
    if since.startswith(checkpoints.PREFIX):
        return [("the checkpoint", since)]
    if since == "-":
        text, name = sys.stdin.read(), "standard input"
    else:
        try:
            text, name = Path(since).read_bytes().decode("utf-8", errors="replace"), since
        except OSError as error:
            raise CheckpointError(f"--since: neither a checkpoint line nor a readable file: {_reason(error)}") from None
    return [(f"{name} line {number}", line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def check_since(database: Path, since: Since, walk_status: int) -> int:
    """Compare the log's stored hashes with every checkpoint and say where it parts from them; the exit status
    given what the walk (`walk_status`, log verify's own) found: 1 beats 2 beats 0."""
    with LogHashes(database) as log:
        findings = checkpoints.compare([signed.statement for _, signed in since.verified], log.heads, log.hash_at)
    labels = [label for label, _ in since.verified]
    times = [signed.statement.time for _, signed in since.verified]
    whose = "this installation's own key" if since.own_key else "the public key given"
    counted = f"{len(since.verified)} checkpoint(s) signed by key {since.key_id} ({whose})"
    if since.skipped_lines:
        counted += f"; {since.skipped_lines} line(s) without one skipped"
    diverged = [finding for finding in findings.values() if not finding.ok]
    if not diverged:
        if walk_status == 0:
            through = ", ".join(f"{f.chain} through seq {f.holds_through}" for f in findings.values())
            print(f"ok: the log extends all {counted}: {through}")
        else:
            print(f"checkpoints: {counted}; each chain's stored hash at each checkpoint's seq is the checkpoint's,")
            print("  but the walk above found rows that do not match the hashes: the log is not the one checkpointed")
    else:
        print(f"DIVERGED from the checkpoints ({counted}):")
        for finding in findings.values():
            print(f"  {finding.describe()}")
            failing = [check for check in finding.checks if check.standing is not Standing.HOLDS]
            for check in failing[:SHOWN_FAILURES]:
                where = f"{labels[check.index]} ({times[check.index]})"
                print(f"    {where} {check.chain} seq {check.seq}: {_said(check, finding)}")
            if len(failing) > SHOWN_FAILURES:
                print(f"    and {len(failing) - SHOWN_FAILURES} more")
            later = finding.signed_after if walk_status == 0 else ()  # an inconsistent chain proves no such thing
            if later:
                first = later[0]
                print(
                    f"    {len(later)} checkpoint(s) past it hold, the first {labels[first.index]}"
                    f" ({times[first.index]}) at seq {first.seq}: signed over the log as it is now, after the change"
                )
    if since.own_key:
        print(
            "note: checked with the key on this machine; whoever can rewrite its files may hold that key too."
            " An auditor checks with the public key they kept (--public-key FILE)."
        )
    if diverged or walk_status == 1:
        return 1
    if since.refused or walk_status != 0:
        return CANNOT_VERIFY
    return 0


def _said(check: checkpoints.PositionCheck, finding: checkpoints.ChainFinding) -> str:
    if check.standing is Standing.DIFFERS:
        return "the log's hash there is another"
    if check.standing is Standing.ABSENT:
        return "the log does not hold that row (deleted, or in a missing archive)"
    return f"beyond the log's end (seq {finding.head})"


class LogHashes:
    """The log's stored chain hashes by seq, and its heads, from one read transaction of the live database.

    A seq inside a sealed segment is read from its archive (the one copy readers use; a live leftover of an
    interrupted seal is checked against it by the walk), one archive kept open at a time: checkpoints are looked
    up in seq order, so a year of hourly ones opens each archive about once per chain."""

    def __init__(self, database: Path) -> None:
        self._base = Path(database).parent
        self._conn = open_read_only(database)
        try:
            self._conn.execute("BEGIN")
            heads = {name: seq for name, seq, _ in self._conn.execute("SELECT name, seq, hash FROM chain_heads")}
            self.heads: dict[Chain, int] = {chain: int(heads.get(chain, 0)) for chain in checkpoints.CHAINS}
            self._segments = load_segments(self._conn)
        except BaseException:
            self._conn.close()
            raise
        self._open: tuple[int, sqlite3.Connection] | None = None

    def hash_at(self, chain: Chain, seq: int) -> bytes | None:
        segment = self._segment(chain, seq)
        if segment is None:
            row = self._conn.execute(f"SELECT hash FROM {chain} WHERE seq = ?", (seq,)).fetchone()
            return _hash_of(row)
        archive = self._archive(segment)
        if archive is None:  # the walk reports it missing; its recorded end hash still answers for its last seq
            _, last = segment_range(segment, chain)
            return segment_last_hash(segment, chain) if seq == last else None
        try:
            row = archive.execute(f"SELECT hash FROM {chain} WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.Error:
            return None
        return _hash_of(row)

    def _segment(self, chain: Chain, seq: int) -> SegmentInfo | None:
        for segment in self._segments:
            first, last = segment_range(segment, chain)
            if first is not None and last is not None and first <= seq <= last:
                return segment
        return None

    def _archive(self, segment: SegmentInfo) -> sqlite3.Connection | None:
        if self._open is not None and self._open[0] == segment.id:
            return self._open[1]
        self._close_archive()
        try:
            conn = open_read_only(archive_path(self._base, segment))
        except (FileNotFoundError, sqlite3.Error):
            return None
        self._open = (segment.id, conn)
        return conn

    def _close_archive(self) -> None:
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def close(self) -> None:
        self._close_archive()
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            pass
        self._conn.close()

    def __enter__(self) -> LogHashes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hash_of(row: tuple[object, ...] | None) -> bytes | None:
    """A stored hash, if it is one (a hash stored as another type is an edit the walk reports)."""
    if row is None or not isinstance(row[0], bytes):
        return None
    return row[0]
