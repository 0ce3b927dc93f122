"""Snapshots of the folded state (issue 19): the round trip, the writer, and every snapshot a start must refuse.

A snapshot is a cache: the ledger may start from it only if it decodes, its checksum holds, its schema is this
console's and its chain hash is the log's at its seq; otherwise the start folds the log, says why, and ends in
the same state.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.realistic_log import clinic_events
from broker.domain import events as domain
from broker.domain.snapshots import SNAPSHOT_SCHEMA, SnapshotRejected, decode_snapshot, encode_snapshot
from broker.domain.state import ConsoleState, project, restore, snapshot
from broker.ledger import Ledger
from broker.runtime.clock import SystemClock
from broker.snapshot_files import SnapshotJob, SnapshotWriter, load_snapshot, snapshot_path
from eventlog.sqlite_store import SqliteEventStore
from tests.unit.test_events_and_state import EVENTS

pytestmark = pytest.mark.timeout(60)

STAMP = "2026-12-04T12:00:00.0000000+08:00"


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=40))
def test_any_fold_survives_snapshot_and_restore(events: list[domain.Event]) -> None:
    state = project(events)
    assert restore(snapshot(state)) == state
    assert snapshot(restore(json.loads(json.dumps(snapshot(state))))) == snapshot(state)


@settings(max_examples=100, deadline=None)
@given(st.lists(EVENTS, max_size=20), st.integers(0, 10**9), st.binary(min_size=32, max_size=32))
def test_the_file_format_round_trips(events: list[domain.Event], seq: int, chain_hash: bytes) -> None:
    state = project(events)
    taken = decode_snapshot(encode_snapshot(state, seq, chain_hash, STAMP))
    assert (taken.state, taken.seq, taken.chain_hash) == (state, seq, chain_hash)


def test_restore_refuses_a_state_of_another_shape() -> None:
    data = snapshot(project(itertools.islice(clinic_events(), 30)))
    for broken in (
        {**data, "corsHosts": "localhost"},
        {key: value for key, value in data.items() if key != "cloudSams"},
        {**data, "recordClearedThrough": True},
        {**data, "status": {**data["status"], "initialized": 1}},
    ):
        with pytest.raises((ValueError, KeyError)):
            restore(broken)


ALLOWED_FIELDS = {
    *("schema", "seq", "chainHash", "writtenAt", "state", "checksum", "readers", "backend", "card", "atr", "kind"),
    *("session", "cardRef", "cardType", "defaultReader", "recordClearedThrough", "simReaders", "cloudSams"),
    *("lastDevice", "clockOffsetSeconds", "corsHosts", "physicalSam", "port", "samId", "hospitalId"),
    *("hospitalName", "hospitalShortName", "cards", "hc", "hpc", "sam", "reader", "pinSession", "status"),
    *("type", "expireTime", "hasPin", "verifiedPin", "initialized", "name", "readerName"),
    *("agents", "departedCards"),
}
"""Every field a snapshot file may have: levels, pseudonyms, public identities. A new field fails this test until
someone checks it holds no PIN, PUK, token or key (the state holds none: contract.md, "Never")."""


def test_a_snapshot_holds_only_fields_known_to_hold_no_secret() -> None:
    events = [*itertools.islice(clinic_events(), 300), domain.PhysicalSamIdentified("p", "s", "h", "n", "sn")]
    body = json.loads(encode_snapshot(project(events), 300, b"\0" * 32, STAMP))
    found: set[str] = set()

    def walk(value: object, names_are_keys: bool = False) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if not names_are_keys:
                    found.add(key)
                walk(inner, key in ("readers", "simReaders", "cloudSams", "agents", "departedCards"))

    walk(body)
    assert found <= ALLOWED_FIELDS, found - ALLOWED_FIELDS


# --- the ledger's start ----------------------------------------------------------------------------


def write_log(database: Path, events: int, start: int = 0) -> None:
    store = SqliteEventStore(database, durability="normal")
    try:
        for event in itertools.islice(clinic_events(), start, start + events):
            store.append_event(*domain.encode(event), STAMP)
        store.commit()
    finally:
        store.close()


def start_ledger(database: Path) -> tuple[Ledger, SqliteEventStore]:
    store = SqliteEventStore(database, durability="normal")
    return Ledger(store, SystemClock()), store


def full_fold(events: int) -> ConsoleState:
    return project(itertools.islice(clinic_events(), events))


def take_snapshot(database: Path) -> int:
    """Start a ledger (which snapshots a log without one at its first commit) and wait for the file."""
    ledger, store = start_ledger(database)
    try:
        ledger.commit()
        writer = ledger.snapshot_writer
        assert writer is not None
        writer.wait()
    finally:
        store.close()
    return load_snapshot(database).seq


def test_a_start_uses_the_snapshot_and_folds_only_what_came_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "console.db"
    write_log(database, 500)
    assert take_snapshot(database) == 500
    write_log(database, 50, start=500)
    caplog.set_level(logging.INFO)
    ledger, store = start_ledger(database)
    store.close()
    assert "state loaded from the snapshot at event 500 plus 50 events" in caplog.text
    assert ledger.state == full_fold(550) and ledger.last_event_seq == 550


def rewrite(database: Path, change: str) -> None:
    path = snapshot_path(database)
    raw = path.read_bytes()
    body = json.loads(raw)
    if change == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif change == "deleted":
        path.unlink()
    elif change == "bad json":
        path.write_bytes(b"{not json")
    elif change == "edited without a checksum":
        body["state"]["clockOffsetSeconds"] = 3600
        path.write_text(json.dumps(body))
    else:
        body.pop("checksum")
        if change == "old schema":
            body["schema"] = SNAPSHOT_SCHEMA - 1
        elif change == "another log's hash":
            body["chainHash"] = "00" * 32
        elif change == "beyond the log":
            body["seq"] = 10**6
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        body["checksum"] = hashlib.sha256(canonical).hexdigest()
        path.write_text(json.dumps(body))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("truncated", "not JSON"),
        ("deleted", "no snapshot to start from"),
        ("bad json", "not JSON"),
        ("edited without a checksum", "bad checksum"),
        ("old schema", f"schema version {SNAPSHOT_SCHEMA - 1}"),
        ("another log's hash", "chain hash does not match"),
        ("beyond the log", "but the log ends at 300"),
    ],
)
def test_a_snapshot_that_does_not_check_out_is_ignored_and_the_log_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str, reason: str
) -> None:
    database = tmp_path / "console.db"
    write_log(database, 300)
    take_snapshot(database)
    rewrite(database, change)
    caplog.set_level(logging.INFO)
    ledger, store = start_ledger(database)
    store.close()
    assert reason in caplog.text
    assert "state loaded from an empty state plus 300 events" in caplog.text
    assert ledger.state == full_fold(300)


def test_an_undecodable_row_is_left_out_and_logged_not_a_reason_to_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "console.db"
    write_log(database, 100)
    store = SqliteEventStore(database, durability="normal")
    store.append_event("EventFromTheFuture", 1, b"{}", STAMP)
    store.commit()
    store.close()
    caplog.set_level(logging.INFO)
    ledger, store = start_ledger(database)
    store.close()
    assert "event 101 (EventFromTheFuture v1) cannot be read and is left out" in caplog.text
    assert ledger.state == full_fold(100)


def test_a_moved_archive_does_not_stop_a_start_with_or_without_a_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "console.db"
    write_log(database, 400)
    take_snapshot(database)
    store = SqliteEventStore(database, durability="normal")
    segment = store.seal(300, 0, tmp_path / "archive")
    store.close()
    assert segment is not None
    archive = tmp_path / "archive" / "segment-000001.db"
    shutil.move(archive, tmp_path / "moved.db")
    caplog.set_level(logging.INFO)
    ledger, store = start_ledger(database)
    store.close()
    assert ledger.state == full_fold(400)
    assert "is missing" not in caplog.text
    snapshot_path(database).unlink()
    caplog.clear()
    ledger, store = start_ledger(database)
    store.close()
    assert "archive of segment 1 (events 1..300) is missing, expected at" in caplog.text
    assert ledger.last_event_seq == 400


# --- the writer ------------------------------------------------------------------------------------


def job(seq: int) -> SnapshotJob:
    return SnapshotJob(full_fold(seq), seq, seq.to_bytes(32, "big"), STAMP)


def test_the_writer_writes_in_the_background_and_the_newest_wins(tmp_path: Path) -> None:
    path = tmp_path / "console.snapshot.json"
    writer = SnapshotWriter(path, every_events=10, every_seconds=60)
    writer.started_from(None, 0.0)
    assert writer.due(1, 0.0)  # none usable: due as soon as there are events
    for seq in (10, 20, 30):
        writer.submit(job(seq), 1.0)
    writer.wait()
    taken = decode_snapshot(path.read_bytes())
    assert (taken.seq, taken.state) == (30, full_fold(30))
    assert not (tmp_path / "console.snapshot.json.tmp").exists()
    assert writer.write_now(job(20), 2.0)  # an older state never replaces a newer file
    assert decode_snapshot(path.read_bytes()).seq == 30
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_writer_is_due_after_n_events_or_t_seconds_with_news() -> None:
    writer = SnapshotWriter(Path("unused"), every_events=10, every_seconds=60)
    writer.started_from(100, 0.0)
    assert not writer.due(100, 1000.0)  # nothing new
    assert not writer.due(105, 30.0)
    assert writer.due(110, 30.0)
    assert writer.due(101, 61.0)


def test_a_failed_write_is_a_warning_and_false(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = SnapshotWriter(tmp_path / "no such dir" / "console.snapshot.json")
    assert not writer.write_now(job(5), 0.0)
    assert "could not write the snapshot at event 5" in caplog.text


def test_a_corrupt_file_is_rejected_with_a_reason() -> None:
    with pytest.raises(SnapshotRejected, match="not JSON"):
        decode_snapshot(b"\xff\xfe")
    with pytest.raises(SnapshotRejected, match="bad checksum"):
        decode_snapshot(b'{"schema": 1}')


def test_before_a_seal_the_committed_state_is_snapshotted_at_once(tmp_path: Path) -> None:
    database = tmp_path / "console.db"
    write_log(database, 50)
    ledger, store = start_ledger(database)
    try:
        ledger.commit()  # none usable at start: one is written in the background
        writer = ledger.snapshot_writer
        assert writer is not None
        writer.wait()
        assert load_snapshot(database).seq == 50
        ledger.emit(domain.DefaultReaderSet(reader="Reader 0"))
        assert not ledger.snapshot_before_seal()  # pending, not committed: never snapshotted
        ledger.commit()  # not due yet (10,000 events or 10 minutes)
        assert load_snapshot(database).seq == 50
        assert ledger.snapshot_before_seal()
        taken = load_snapshot(database)
        assert (taken.seq, taken.state) == (51, ledger.state)
    finally:
        store.close()
