"""One card's history (`nhi-console log card`) over an event log of 1,000,000 events, with the audit indexes and
without them, and what the same questions cost typed into `nhi-console log query`.

Why: the audit surface (eventlog/audit_query.py) reads the whole history as TEMP views over the UNION ALL of every
sealed archive and the live log. SQLite carries a constant condition (`card_ref = ?`, `session IN (...)`) into
each file, where the indexes of eventlog/audit_views.py (`INDEXES`: card_ref, session, caused_by, calls.uuid)
answer it; it does not carry a correlated one or a join. So the views write each correlated lookup once per file,
and `card_history` (eventlog/audit_reports.py) asks in steps with constants. This measures what an auditor waits
for, both ways, and prints the sessions statement's plan so one sees which indexes are used.

    .venv/bin/python -m bench.audit_query [--events 1000000] [--dir DIR] [--seal-fraction 0.5] [--archives 1]
    .venv/bin/python bench/audit_query.py --dir /tmp/nhi-bench-audit     # keep the log for the next run

The log is written once through the console's own writer (`SqliteEventStore`, durability "normal") with a clinic's
traffic spread over 100 days: card insertions of 20,000 cards (health cards and a few staff cards) in four
readers, each insertion detected, authenticated and read 1-3 times through `/api/` calls (each call recorded, its
events carrying its uuid as `caused_by`), staff cards' PINs rejected now and then before they are verified, and
every card removed. Then the oldest `--seal-fraction` of it is sealed into `--archives` archives, so a card's
history spans archives and the live log, as it does in a console that has run for months. With `--dir` the log
(and its copy without the indexes) is kept there and reused by the next run with the same parameters and the same
audit indexes and views (their SQL's fingerprint is part of the directory's name).

Measured (warm page cache, one process):
- open + lookup: `AuditQuery(log)` opened, `card_history(surface, card_ref)`, closed; `--runs` times;
- lookup alone: `card_history` on one open surface, `--runs` times; and each of its steps;
- the same on a copy of the files with the audit indexes dropped (live log and archives), at most
  `--slow-runs` runs, each in a child process stopped after `--slow-timeout` seconds.
The card is one with the median number of insertions among health cards (`--kind hpc`: among staff cards).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import queue
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.domain import events as domain
from broker.domain.pseudonyms import Pseudonyms
from contract.status_codes import StatusCode
from eventlog.audit_query import AuditQuery, QueryRefused, QueryResult
from eventlog.audit_reports import CARD_SESSIONS_SQL, card_history
from eventlog.audit_views import INDEXES, LIVE_STATEMENTS
from eventlog.sqlite_store import SqliteEventStore, open_read_only

KEY: Final = bytes(range(32))
"""The installation's pseudonym key: fixed, so the same card numbers give the same card_refs in every build."""
SEED: Final = 20260901
DATABASE: Final = "console.db"
MANIFEST: Final = "bench-audit-log.json"
"""Written last, into the log's directory: a log without one was not finished and is built again."""

BATCH: Final = 5_000
"""Events per commit (their calls ride in the same transactions)."""
DAYS: Final = 100
FIRST_DAY: Final = date(2026, 9, 1)
OPEN_TICKS: Final = 10 * 3600 * 10_000_000
"""A clinic's day, 08:00 to 18:00, in the record timestamps' 100 ns ticks."""
READERS: Final = ("Reader 0", "Reader 1", "Reader 2", "Reader 3")
HEALTH_CARDS: Final = 19_600
STAFF_CARDS: Final = 400
STAFF_SHARE: Final = 0.10
"""Of the insertions: a staff card is inserted every day, a patient's card a few times in 100 days."""
PIN_REJECTED_SHARE: Final = 0.25
CALLERS: Final = ("native", "https://his.example")
HC_ATR: Final = "3B8980018057424E4348484396"
HPC_ATR: Final = "3B8980018057424E4348485096"

STATEMENTS: Final = {
    "card_sessions": "sessions",
    "pin_attempts": "pin attempts",
    "call_touches": "touches",
    "calls": "calls",
}
"""card_history's steps, by the view or table each statement reads (the first named in its FROM)."""


def statement_name(sql: str) -> str:
    found = re.search(r"FROM (\w+)", sql)
    return STATEMENTS.get(found.group(1), sql) if found else sql


INDEX_NAMES: Final = tuple(
    match.group(1) for statement in INDEXES if (match := re.search(r"INDEX IF NOT EXISTS (\w+) ON", statement))
)
assert len(INDEX_NAMES) == len(INDEXES), "every audit index is named"
SCHEMA_FINGERPRINT: Final = hashlib.sha256("\n".join(LIVE_STATEMENTS).encode()).hexdigest()[:10]
"""Part of a kept log's directory name: the surface's TEMP views are made by this code, and an expression index
serves only the very same expression, so a log whose indexes older code made is never measured by newer code."""


# -- building the log -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltLog:
    """What the manifest keeps about a finished log."""

    events: int
    calls: int
    insertions: int
    cards: int
    archives: int
    sealed_events: int
    sealed_calls: int
    build_seconds: float
    seal_seconds: float
    typical: dict[str, tuple[str, int]]
    """kind (hc, hpc) -> (card_ref, insertions) of a card with the median number of insertions of its kind."""


class ClinicWriter:
    """Writes insertions into a store: events encoded as the broker encodes them, with their causing calls, at
    times spread evenly over DAYS opening hours by their position in the log."""

    def __init__(self, store: SqliteEventStore, events: int, seal_points: Sequence[int]) -> None:
        self.store = store
        self.target = events
        self.rng = random.Random(SEED)
        self.written = 0
        self.calls = 0
        self.session = 0
        self.stamp = ""
        self.day = -1
        self.seal_points = set(seal_points)
        self.sealed_calls: dict[int, int] = {}
        """event seq -> the last call seq written with it (where a seal through that event ends in calls)."""
        pseudonyms = Pseudonyms(KEY)
        self.health = [pseudonyms.card(f"{number:012d}") for number in range(1, HEALTH_CARDS + 1)]
        self.staff = [pseudonyms.card(f"HPC{number:07d}") for number in range(1, STAFF_CARDS + 1)]
        self.insertions: Counter[str] = Counter()

    def _next_stamp(self) -> str:
        position = self.written * DAYS * OPEN_TICKS // self.target
        day, ticks = divmod(position, OPEN_TICKS)
        seconds, fraction = divmod(ticks, 10_000_000)
        hours, rest = divmod(8 * 3600 + seconds, 3600)
        when = FIRST_DAY + timedelta(days=day)
        return f"{when.isoformat()}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{fraction:07d}+08:00"

    def event(self, event: domain.Event, caused_by: str | None = None) -> None:
        type_name, version, payload = domain.encode(event, caused_by)
        self.stamp = self._next_stamp()
        seq = self.store.append_event(type_name, version, payload, self.stamp)
        self.written += 1
        if seq in self.seal_points:
            self.sealed_calls[seq] = self.calls
        if self.written % BATCH == 0:
            self.store.commit()

    def call(self, url: str, call_uuid: str, status: int, caller: str) -> None:
        self.calls = self.store.append_call(url, call_uuid, self.stamp, status, caller)

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def write(self) -> None:
        while self.written < self.target:
            day = self.written * DAYS // self.target
            if day != self.day:
                self.day = day
                for reader in READERS:
                    self.event(domain.ReaderAttached(reader=reader, backend="pcsc"))
            if self.rng.random() < STAFF_SHARE:
                self.staff_insertion()
            else:
                self.health_insertion()
        self.store.commit()

    def _reads(self, kind: str, reader: str, session: int, caller: str, first: str | None = None) -> None:
        for index in range(self.rng.randint(1, 3)):
            call_uuid = first if index == 0 and first is not None else self.uuid()
            self.event(domain.CardDataRead(kind=kind, reader=reader, session=session), caused_by=call_uuid)
            self.call(f"/api/{kind}/v1/Basic", call_uuid, 0, caller)

    def health_insertion(self) -> None:
        card_ref = self.rng.choice(self.health)
        reader = self.rng.choice(READERS)
        caller = self.rng.choice(CALLERS)
        self.session += 1
        session = self.session
        self.insertions[card_ref] += 1
        self.event(domain.CardInserted(reader, HC_ATR, "hc", session, card_ref))
        first = self.uuid()
        self.event(domain.CardDetected(kind="hc", reader=reader, session=session), caused_by=first)
        self.event(domain.CardAuthenticated(kind="hc", reader=reader, session=session), caused_by=first)
        self._reads("hc", reader, session, caller, first)
        self.event(domain.CardRemoved(reader=reader, session=session, reason="removed"))

    def staff_insertion(self) -> None:
        number = self.rng.randrange(STAFF_CARDS)
        card_ref = self.staff[number]
        reader = self.rng.choice(READERS)
        caller = self.rng.choice(CALLERS)
        self.session += 1
        session = self.session
        self.insertions[card_ref] += 1
        self.event(domain.CardInserted(reader, HPC_ATR, "hpc", session, card_ref, 1 + number % 2))
        first = self.uuid()
        self.event(domain.CardDetected(kind="hpc", reader=reader, session=session), caused_by=first)
        self.event(domain.CardAuthenticated(kind="hpc", reader=reader, session=session), caused_by=first)
        verification = "/api/hpc/v1/Verification/Hpc"
        if self.rng.random() < PIN_REJECTED_SHARE:
            rejected = domain.HpcPinRejected(reader=reader, session=session, tries_left=2, blocked=False)
            self.event(rejected, caused_by=first)
            self.call(verification, first, int(StatusCode.HPC_PIN_FAILED), caller)
            first = self.uuid()
        expires = f"{self.stamp[:10]}T18:00:00+08:00"
        self.event(domain.HpcPinVerified(reader=reader, session=session, expires_at=expires), caused_by=first)
        self.call(verification, first, 0, caller)
        self._reads("hpc", reader, session, caller)
        self.event(domain.CardRemoved(reader=reader, session=session, reason="removed"))

    def typical(self) -> dict[str, tuple[str, int]]:
        """Per kind, the first card (in card number order) with the median number of insertions of its kind."""
        found: dict[str, tuple[str, int]] = {}
        for kind, cards in (("hc", self.health), ("hpc", self.staff)):
            counts = [self.insertions[card] for card in cards if self.insertions[card]]
            if not counts:
                continue
            median = sorted(counts)[len(counts) // 2]
            found[kind] = next((card, median) for card in cards if self.insertions[card] == median)
        return found


def build(directory: Path, events: int, seal_fraction: float, archives: int) -> BuiltLog:
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / DATABASE
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(directory / "archive", ignore_errors=True)
    sealed = int(events * seal_fraction)
    seal_points = [sealed * (part + 1) // archives for part in range(archives)] if sealed and archives else []
    started = time.perf_counter()
    store = SqliteEventStore(database, durability="normal")
    try:
        writer = ClinicWriter(store, events, seal_points)
        writer.write()
        written = time.perf_counter()
        for point in seal_points:
            store.seal(point, writer.sealed_calls[point], directory / "archive")
        finished = time.perf_counter()
    finally:
        store.close()
    built = BuiltLog(
        events=writer.written,
        calls=writer.calls,
        insertions=writer.session,
        cards=len(writer.insertions),
        archives=len(seal_points),
        sealed_events=seal_points[-1] if seal_points else 0,
        sealed_calls=writer.sealed_calls[seal_points[-1]] if seal_points else 0,
        build_seconds=written - started,
        seal_seconds=finished - written,
        typical=writer.typical(),
    )
    (directory / MANIFEST).write_text(json.dumps(asdict(built), indent=1))
    return built


def load_or_build(directory: Path, events: int, seal_fraction: float, archives: int) -> tuple[BuiltLog, bool]:
    """The log in `directory`, built first unless a finished one is there; (its manifest, whether it was cached)."""
    manifest = directory / MANIFEST
    if manifest.is_file() and (directory / DATABASE).is_file():
        data: dict[str, Any] = json.loads(manifest.read_text())
        data["typical"] = {kind: (ref, count) for kind, (ref, count) in data["typical"].items()}
        return BuiltLog(**data), True
    return build(directory, events, seal_fraction, archives), False


def log_files(directory: Path) -> list[Path]:
    return [directory / DATABASE, *sorted((directory / "archive").glob("*.db"))]


def without_indexes(source: Path, target: Path) -> None:
    """A copy of the log (live file and archives) with the audit indexes dropped; kept like the log itself."""
    if (target / MANIFEST).is_file():
        return
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(MANIFEST, "*-shm", "*-wal"))
    for path in log_files(target):
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            for name in INDEX_NAMES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        finally:
            conn.close()
    shutil.copy(source / MANIFEST, target / MANIFEST)


# -- measuring ------------------------------------------------------------------------------------------------


class TimedAuditQuery(AuditQuery):
    """The audit surface, noting how long each statement took (fetching every row) and how many rows it gave."""

    def __init__(self, database: Path, note: Callable[[str, float, int], None]) -> None:
        self.note = note
        super().__init__(database)

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> QueryResult:
        started = time.perf_counter()
        result = super().query(sql, parameters)
        self.note(statement_name(sql), time.perf_counter() - started, len(result.rows))
        return result


@dataclass
class Lookup:
    """One timed lookup: seconds to open the surface (None if it was opened before), per statement, in all."""

    opened: float | None
    statements: dict[str, float]
    rows: dict[str, int]
    total: float
    finished: bool = True


def timed_lookup(database: Path, card_ref: str, surface: TimedAuditQuery | None = None) -> Lookup:
    """`card_history` on `surface`, or on a surface opened (and closed) for it when there is none."""
    lookup = Lookup(opened=None, statements={}, rows={}, total=0.0)

    def note(name: str, seconds: float, rows: int) -> None:  # a step in chunks is noted once per chunk
        lookup.statements[name] = lookup.statements.get(name, 0.0) + seconds
        lookup.rows[name] = lookup.rows.get(name, 0) + rows

    started = time.perf_counter()
    if surface is None:
        with TimedAuditQuery(database, note) as own:
            lookup.opened = time.perf_counter() - started
            card_history(own, card_ref)
    else:
        surface.note = note
        card_history(surface, card_ref)
    lookup.total = time.perf_counter() - started
    return lookup


def _child_lookup(database: Path, card_ref: str, out: multiprocessing.Queue[tuple[str, float, int]]) -> None:
    """In a child process: one open + lookup, each step reported as it ends (the parent may stop us)."""
    started = time.perf_counter()
    with TimedAuditQuery(database, lambda name, seconds, rows: out.put((name, seconds, rows))) as surface:
        out.put(("open", time.perf_counter() - started, 0))
        card_history(surface, card_ref)
    out.put(("done", time.perf_counter() - started, 0))


def bounded_lookup(database: Path, card_ref: str, timeout: float) -> Lookup:
    """One open + lookup in a child process, stopped after `timeout` seconds (then `finished` is False)."""
    out: multiprocessing.Queue[tuple[str, float, int]] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_child_lookup, args=(database, card_ref, out), daemon=True)
    lookup = Lookup(opened=None, statements={}, rows={}, total=0.0, finished=False)
    started = time.perf_counter()
    deadline = started + timeout
    child.start()
    try:
        while True:
            try:
                name, seconds, rows = out.get(timeout=max(0.01, deadline - time.perf_counter()))
            except queue.Empty:
                lookup.total = time.perf_counter() - started
                break
            if name == "open":
                lookup.opened = seconds
            elif name == "done":
                lookup.total, lookup.finished = seconds, True
                break
            else:
                lookup.statements[name] = lookup.statements.get(name, 0.0) + seconds
                lookup.rows[name] = lookup.rows.get(name, 0) + rows
    finally:
        if child.is_alive():
            child.kill()
        child.join()
    return lookup


def seconds(values: Sequence[float]) -> str:
    return f"p50 {statistics.median(values):8.3f} s   max {max(values):8.3f} s   (n={len(values)})"


def statement_line(lookups: Sequence[Lookup]) -> str:
    parts = []
    for name in ("open", *STATEMENTS.values()):
        values = [
            value
            for lookup in lookups
            if (value := lookup.opened if name == "open" else lookup.statements.get(name)) is not None
        ]
        if values:
            parts.append(f"{name} {statistics.median(values):.3f}")
    return "p50 per step (s): " + ", ".join(parts)


# -- the plan -------------------------------------------------------------------------------------------------


def explain(database: Path, sql: str, card_ref: str) -> tuple[str, list[tuple[int, int, str]]]:
    """EXPLAIN QUERY PLAN of `sql` through the surface; if the surface refuses it, of the live file's own views."""
    with AuditQuery(database) as surface:
        try:
            result = surface.query("EXPLAIN QUERY PLAN " + sql, (card_ref,))
            return "through the audit surface (union views)", [(row[0], row[1], row[3]) for row in result.rows]
        except QueryRefused as refusal:
            reason = str(refusal)
    conn = open_read_only(database)
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, (card_ref,)).fetchall()
    finally:
        conn.close()
    return f"on the live file alone (the surface refused EXPLAIN: {reason})", [(row[0], row[1], row[3]) for row in rows]


def plan_tree(rows: Sequence[tuple[int, int, str]]) -> Iterator[str]:
    depth: dict[int, int] = {0: -1}
    for node, parent, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        yield "  " * depth[node] + detail


def plan_counts(rows: Sequence[tuple[int, int, str]]) -> str:
    details = [detail for _, _, detail in rows]
    scans = [detail for detail in details if detail.startswith("SCAN ") and "CONSTANT ROW" not in detail]
    searches = [detail for detail in details if detail.startswith("SEARCH ")]
    indexes = sorted({found.group(1) for detail in details if (found := re.search(r"INDEX (\w+)", detail))})
    return f"{len(scans)} SCAN, {len(searches)} SEARCH (indexes used: {', '.join(indexes) or 'none'})"


LOG_QUERIES: Final = {
    "card_sessions WHERE card_ref = ?": CARD_SESSIONS_SQL,
    "pin_attempts WHERE card_ref = ?": "SELECT * FROM pin_attempts WHERE card_ref = ? ORDER BY seq",
    "calls joined through call_touches (docs/audit.md)": (
        "SELECT DISTINCT c.seq, c.timestamp, c.url, c.status_code, c.caller FROM card_sessions s"
        " JOIN call_touches t ON t.reader = s.reader AND t.session = s.session"
        " JOIN calls c ON c.uuid = t.call_uuid WHERE s.card_ref = ? ORDER BY c.seq"
    ),
}
"""What an auditor might type into `nhi-console log query` for one card, timed once each through the surface."""


def log_queries(database: Path, card_ref: str) -> Iterator[str]:
    with AuditQuery(database) as surface:
        for name, sql in LOG_QUERIES.items():
            started = time.perf_counter()
            rows = surface.query(sql, (card_ref,)).rows
            yield f"{name:<52} {time.perf_counter() - started:8.3f} s  {len(rows):3d} rows"


# -- the report -----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="where the log is built and kept (default: a temporary directory)")
    parser.add_argument("--seal-fraction", type=float, default=0.5, help="the oldest part sealed into archives")
    parser.add_argument("--archives", type=int, default=1, help="how many archives the sealed part is split into")
    parser.add_argument("--kind", choices=("hc", "hpc"), default="hc", help="the card looked up: health or staff")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slow-runs", type=int, default=2, help="runs without the indexes (default 2)")
    parser.add_argument("--slow-timeout", type=float, default=600.0, help="seconds before such a run is stopped")
    parser.add_argument("--all-plans", action="store_true", help="print the sessions statement's whole plan")
    args = parser.parse_args()
    if not 0 <= args.seal_fraction < 1 or args.archives < 0 or args.archives > 8:
        parser.error("--seal-fraction is in [0, 1) and --archives in 0..8")

    with contextlib.ExitStack() as stack:
        if args.dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nhi-bench-audit-")))
        else:
            root = Path(args.dir)
        key = f"log-{args.events}-sealed{args.seal_fraction:g}-archives{args.archives}-schema{SCHEMA_FINGERPRINT}"
        indexed_dir, bare_dir = root / key, root / f"{key}-no-indexes"
        built, cached = load_or_build(indexed_dir, args.events, args.seal_fraction, args.archives)
        without_indexes(indexed_dir, bare_dir)
        card_ref, insertions = built.typical[args.kind]
        size = sum(path.stat().st_size for path in log_files(indexed_dir))

        print(
            f"log: {built.events:,} events, {built.calls:,} calls,"
            f" {built.insertions:,} insertions of {built.cards:,} cards"
        )
        print(
            f"  {built.archives} archive(s) holding events 1-{built.sealed_events:,} and calls"
            f" 1-{built.sealed_calls:,}, the rest live; {size / 2**20:,.0f} MiB in {indexed_dir}"
        )
        origin = "cached; " if cached else ""
        print(f"  {origin}built in {built.build_seconds:.1f} s, sealed in {built.seal_seconds:.1f} s")
        print(f"card: {card_ref} ({args.kind}, {insertions} insertions, the median of its kind)")

        database = indexed_dir / DATABASE
        cold = [timed_lookup(database, card_ref) for _ in range(args.runs)]
        surface = TimedAuditQuery(database, lambda *_: None)
        try:
            warm = [timed_lookup(database, card_ref, surface) for _ in range(args.runs)]
        finally:
            surface.close()
        found = cold[0].rows
        print(
            f"found: {found.get('sessions', 0)} sessions, {found.get('pin attempts', 0)} PIN attempts,"
            f" {found.get('calls', 0)} calls"
        )
        print("with the audit indexes:")
        print(f"  open + lookup   {seconds([lookup.total for lookup in cold])}")
        print(f"  lookup alone    {seconds([lookup.total for lookup in warm])}")
        print(f"  {statement_line(cold)}")

        print(f"without the audit indexes (dropped: {', '.join(INDEX_NAMES)}):")
        bare: list[Lookup] = []
        for _ in range(args.slow_runs):
            bare.append(bounded_lookup(bare_dir / DATABASE, card_ref, args.slow_timeout))
            if not bare[-1].finished:
                break
        done = [lookup for lookup in bare if lookup.finished]
        if done:
            print(f"  open + lookup   {seconds([lookup.total for lookup in done])}")
            print(f"  lookup alone    {seconds([lookup.total - (lookup.opened or 0.0) for lookup in done])}")
            if done[0].rows != found:
                print(f"  DIFFERENT ANSWER: {done[0].rows} (with the indexes: {found})")
        if len(done) < len(bare):
            print(f"  a run was stopped after {args.slow_timeout:.0f} s, unfinished")
        if bare:
            print(f"  {statement_line(bare)}")
        if done:
            ratio = statistics.median([lookup.total for lookup in done]) / statistics.median(
                [lookup.total for lookup in cold]
            )
            print(f"  open + lookup p50 without / with the indexes: {ratio:,.1f}x")

        print("`nhi-console log query` statements for the same card, through the surface (with the indexes):")
        for line in log_queries(database, card_ref):
            print(f"  {line}")

        how, rows = explain(database, CARD_SESSIONS_SQL, card_ref)
        print(f"EXPLAIN QUERY PLAN of the sessions statement, {how}: {plan_counts(rows)}")
        print(f"  {CARD_SESSIONS_SQL}")
        if args.all_plans:
            for line in plan_tree(rows):
                print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
