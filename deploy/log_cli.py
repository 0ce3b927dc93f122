"""`nhi-console log`: the auditors' tools over the event log and the call record.

Everything here reads the log read-only (it works while the console runs and
never writes), streams (constant memory whatever the log's size), and reads
the sealed archives as well as the live database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from deploy.audit_cli import add_audit_commands
from deploy.checkpoint_cli import add_checkpoint_arguments, add_since_arguments, checkpoint_command
from deploy.paths import console_paths

PROGRESS_EVERY = 10_000


def add_log_commands(commands: Any, common: Any) -> None:
    """Register `log tail|export|verify|replay|stats|checkpoint|query|card|report|copy` on the CLI's subparsers."""
    log_parser = commands.add_parser("log", help="read, export, verify and replay the event log (read-only)")
    log_commands = log_parser.add_subparsers(dest="log_command", required=True)

    def base(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = log_commands.add_parser(name, help=help_text)
        common(sub)
        sub.add_argument("--sim", action="store_true", help="the simulation bench's log instead of the real one")
        return sub

    tail = base("tail", "the newest events (or calls)")
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new ones")
    tail.add_argument("--calls", action="store_true", help="the call record instead of events")
    tail.set_defaults(handler=tail_log)

    export = base("export", "write events (or calls) as JSON lines or CSV")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--since", type=_timestamp, help="ISO 8601, e.g. 2026-11-01T00:00:00+08:00")
    export.add_argument("--until", type=_timestamp)
    export.add_argument("--type", action="append", dest="types", help="only this event type (repeatable)")
    export.add_argument("--calls", action="store_true", help="the call record instead of events")
    export.add_argument("--output", type=Path, help="a file (default: standard output)")
    export.set_defaults(handler=export_log)

    verify = base("verify", "check the hash chains across archives and the live log")
    add_since_arguments(verify)
    verify.set_defaults(handler=verify_log)
    base("replay", "rebuild the state from the log and compare it with the running console's").set_defaults(
        handler=replay_log
    )
    base("stats", "counts, time span, segments, sizes").set_defaults(handler=stats_log)
    checkpoint = base("checkpoint", "a signed statement of both chains' heads, to keep off this machine")
    add_checkpoint_arguments(checkpoint)
    checkpoint.set_defaults(handler=checkpoint_command)
    add_audit_commands(base)


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a bare time means the machine's local time, as the record's are
    return moment


def _database(args: argparse.Namespace) -> Path:
    database = console_paths(args.data_dir, sim=args.sim).database
    if not database.exists():
        raise SystemExit(f"no event log at {database}")
    return database


def _event_row(event: Any) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "recorded_at": event.recorded_at,
        "type": event.type,
        "version": event.version,
        "payload": json.loads(event.payload),
    }


def _call_row(call: Any) -> dict[str, Any]:
    return {
        "seq": call.seq,
        "url": call.url,
        "uuid": call.uuid,
        "timestamp": call.timestamp,
        "statusCode": call.status_code,
        "caller": call.caller,
    }


def tail_log(args: argparse.Namespace) -> int:
    from eventlog.reader import LogReader

    reader = LogReader(_database(args))
    try:
        rows = reader.calls() if args.calls else reader.events()
        last: list[Any] = []
        for row in rows:  # streams: keeps only the newest n
            last.append(row)
            if len(last) > args.n:
                last.pop(0)
        render = _call_row if args.calls else _event_row
        for row in last:
            print(json.dumps(render(row), ensure_ascii=False), flush=True)
        if not args.follow:
            return 0
        seen = last[-1].seq if last else 0
        while True:
            time.sleep(0.5)
            source = reader.calls(after=seen) if args.calls else reader.events(after=seen)
            for row in source:
                print(json.dumps(render(row), ensure_ascii=False), flush=True)
                seen = row.seq
    except KeyboardInterrupt:
        return 0
    finally:
        reader.close()


class _Progress:
    """A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self._total = max(total, 1)
        self._stream = stream
        self._active = stream.isatty()

    def __call__(self, done: int) -> None:
        if not self._active:
            return
        fraction = min(done / self._total, 1.0)
        bar = "#" * int(fraction * 30)
        self._stream.write(f"\r[{bar:<30}] {done:>10,} / {self._total:,}")
        self._stream.flush()

    def finish(self, done: int) -> None:
        if self._active:
            self(done)
            self._stream.write("\n")


def export_log(args: argparse.Namespace) -> int:
    from eventlog.export import write_csv, write_jsonl
    from eventlog.reader import LogReader

    reader = LogReader(_database(args))
    try:
        stats = reader.stats()
        if args.calls:
            rows: Iterable[Any] = reader.calls(since=args.since, until=args.until)
            total = stats.call_count
        else:
            types = set(args.types) if args.types else None
            rows = reader.events(since=args.since, until=args.until, types=types)
            total = stats.event_count
        progress = _Progress(total)
        writer = write_csv if args.format == "csv" else write_jsonl
        with contextlib.ExitStack() as closing:
            out: TextIO = (
                closing.enter_context(open(args.output, "w", encoding="utf-8", newline=""))
                if args.output
                else sys.stdout
            )
            count = writer(rows, out, progress=progress)
        progress.finish(count)
        print(f"exported {count} {'calls' if args.calls else 'events'}", file=sys.stderr)
        return 0
    finally:
        reader.close()


def verify_log(args: argparse.Namespace) -> int:
    """The hash chains, every sealed archive's presence (a gap is named: segment, range, expected path), and the
    newest snapshot against the fold of the events it covers. With `--since`, also that the log extends each
    checkpoint given (deploy/checkpoint_cli.py; exit 2 when a checkpoint cannot be checked)."""
    from deploy.checkpoint_cli import CANNOT_VERIFY, check_since, read_since
    from eventlog.reader import LogReader
    from eventlog.segment_files import describe_range
    from eventlog.verify import verify

    since = None
    if args.since is not None:
        since = read_since(args)  # signatures first: a checkpoint that cannot be trusted is no reason to walk
        if since is None:
            return CANNOT_VERIFY
    database = _database(args)
    report = verify(database)
    with LogReader(database) as reader:
        missing = [found for found in reader.segment_files() if not found.present]
    gap = "archive of segment "
    problems = [problem for problem in report.problems if not (missing and problem.reason.startswith(gap))]
    if missing:
        print(f"MISSING: {len(missing)} sealed archive(s) are not where the log says (the console runs without")
        print("them, but the history they hold cannot be checked or replayed):")
        for found in missing:
            print(f"  segment {found.segment.id}: {describe_range(found.segment)}, expected at {found.path}")
    if problems:
        first = min(problems, key=lambda p: (p.seq, p.table != "events"))  # as VerifyReport.first orders them
        print(f"TAMPERED: first problem in {first.table} at seq {first.seq}: {first.reason}")
        for problem in problems[:20]:
            if problem is not first:
                print(f"  also {problem.table} seq {problem.seq}: {problem.reason}")
    elif report.truncated:
        print("TAMPERED: more problems than could be listed")
    snapshot_ok, snapshot_lines = _check_snapshot(database)
    if report.ok and snapshot_ok:
        print(f"ok: {report.events_checked} events and {report.calls_checked} calls, hash chains intact")
    print("\n".join(snapshot_lines))
    status = 0 if report.ok and snapshot_ok else 1
    return status if since is None else check_since(database, since, status)


def _check_snapshot(database: Path) -> tuple[bool, list[str]]:
    """Whether the newest snapshot equals the fold of events 1..its seq (False only if it differs or cannot be
    compared), and the lines that say so. A snapshot the console would ignore is reported but is no failure: it
    is not used."""
    from broker.domain.snapshots import SnapshotRejected
    from broker.domain.state import snapshot
    from broker.snapshot_files import SnapshotMissing, load_snapshot, snapshot_path
    from eventlog.sqlite_store import ArchiveMissingError

    path = snapshot_path(database)
    try:
        taken = load_snapshot(database)
    except SnapshotMissing:
        return True, ["snapshot: none (the console folds the whole log when it starts)"]
    except SnapshotRejected as rejected:
        return True, [f"snapshot: {path} is ignored by the console ({rejected}); it folds the whole log instead"]
    try:
        from broker.domain.replay import replayed_snapshot

        replayed = replayed_snapshot(database, taken.seq)
    except ArchiveMissingError as error:
        return False, [f"SNAPSHOT NOT CHECKED: the events it covers cannot all be read ({error})"]
    stored = snapshot(taken.state)
    if replayed == stored:
        return True, [f"snapshot: ok, the state at event {taken.seq} equals the fold of events 1..{taken.seq} ({path})"]
    heading = f"SNAPSHOT DIFFERS: {path} does not equal the fold of events 1..{taken.seq} (delete it: the next start"
    return False, [heading + " refolds the log)", *_differences(replayed, stored, "snapshot")]


def _differences(replayed: dict[str, Any], other: dict[str, Any], label: str) -> list[str]:
    lines = []
    for key in sorted(set(replayed) | set(other)):
        if replayed.get(key) != other.get(key):
            lines.append(f"  {key}: replayed {json.dumps(replayed.get(key), ensure_ascii=False)}")
            lines.append(f"  {' ' * len(key)}  {label:<8} {json.dumps(other.get(key), ensure_ascii=False)}")
    return lines


def replay_log(args: argparse.Namespace) -> int:
    """The running console's state against the fold of the log up to the event it includes, then the newest
    snapshot against the fold of the events it covers."""
    from api.core_client import CoreClient, CoreUnavailable
    from broker.domain.replay import replayed_snapshot

    database = _database(args)
    paths = console_paths(args.data_dir, sim=args.sim)
    try:
        running = CoreClient(paths.api_endpoint, timeout=5).call("GetStateSnapshot")
    except CoreUnavailable:
        running = None
    status = 0
    if running is None:
        print("the console is not running: nothing to compare with", file=sys.stderr)
        status = 2
    else:
        through = int(running.body["throughSeq"])
        replayed = replayed_snapshot(database, through)
        if replayed == running.body["state"]:
            print(f"ok: replaying events 1..{through} gives the running console's state")
        else:
            print(f"DIFFERENT: replaying events 1..{through} does not give the running console's state")
            print("\n".join(_differences(replayed, running.body["state"], "running")))
            status = 1
    snapshot_ok, snapshot_lines = _check_snapshot(database)
    print("\n".join(snapshot_lines))
    return status if snapshot_ok else 1


def stats_log(args: argparse.Namespace) -> int:
    from broker.domain.snapshots import SnapshotRejected
    from broker.snapshot_files import load_snapshot, snapshot_path
    from eventlog.reader import LogReader
    from eventlog.segment_files import describe_range

    reader = LogReader(_database(args))
    try:
        stats = reader.stats()
        files = reader.segment_files()
    finally:
        reader.close()
    print(f"events        {stats.event_count:,}")
    for type_name, count in sorted(stats.events_by_type.items()):
        print(f"  {type_name:<22} {count:,}")
    print(f"calls         {stats.call_count:,}")
    print(f"first event   {stats.first_event_at or '-'}")
    print(f"last event    {stats.last_event_at or '-'}")
    print(f"segments      {len(files)}")
    for found in files:
        segment = found.segment
        where = "present" if found.present else "MISSING (its rows are not counted above)"
        print(f"  segment {segment.id}: {describe_range(segment)}, sealed {segment.sealed_at}")
        print(f"    expected at {found.path}: {where}")
    taken = snapshot_path(_database(args))
    try:
        seq = load_snapshot(_database(args)).seq
        print(f"snapshot      events 1..{seq:,} at {taken}")
    except SnapshotRejected as why:
        print(f"snapshot      none usable ({why})")
    return 0
