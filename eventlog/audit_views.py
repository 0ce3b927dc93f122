"""The audit views: the questions an auditor asks, as read-only SQL over the event log and the call record.

Why views in the database itself (created by the schema migration, eventlog/sqlite_store.py): an auditor's
tools (the sqlite3 shell, Datasette, `nhi-console log query`) see the same documented names, and every one of
them reads the same definitions; nobody has to rebuild the join of JSON payloads by hand (docs/audit.md).

Each view's body is written once here, over the names `events` and `calls`:
- in a live log or a sealed archive (`LIVE_STATEMENTS`, `ARCHIVE_STATEMENTS`), those are the file's own
  tables, so each file answers for its own rows;
- in the query surface (eventlog/audit_query.py), they are TEMP views over every archive and the live log
  together, and the same bodies become TEMP views of the whole history.

The indexes are what makes one card's history cheap in a million events: a card's insertions are found by
their `card_ref`, the events of an insertion by their `session`, the events a call caused by `caused_by`, and
a call by its `uuid`. SQLite uses an expression index only for the very same expression, so every payload
field is read through `field()`, written once.

Nothing in a view is personal: a card is its keyed pseudonym (`card_ref`), an origin is a web site, never a
person; the events themselves never hold a card number, a name or a secret (broker/domain/events.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from contract.status_codes import StatusCode


def field(name: str, table: str = "") -> str:
    """The SQL for one payload field, NULL where the payload is not JSON.

    The payload is UTF-8 JSON stored as a BLOB, hence the CAST (SQLite's json functions refuse a BLOB, or read
    it as JSONB from 3.45 on). The json_valid guard is not decoration: the store is bytes-only (any payload is
    stored, eventlog/store.py), and an expression index whose expression raises on a row would make that row's
    INSERT fail: a log that refuses to record."""
    payload = f"CAST({table + '.' if table else ''}payload AS TEXT)"
    return f"iif(json_valid({payload}), json_extract({payload}, '$.{name}'), NULL)"


def day(column: str) -> str:
    """The day of a timestamp as the console wrote it (its local date), not SQLite's date(), which converts a
    time with an offset to UTC: a clinic's 07:30 in Taipei would count on the day before."""
    return f"substr({column}, 1, 10)"


DC_ERRORS: Final = (
    StatusCode.DC_CONNECTION_FAILED,
    StatusCode.DC_COMMAND_UNKNOWN,
    StatusCode.DC_HTTP_ERROR,
    StatusCode.DC_SESSION_EXPIRED,
    StatusCode.HCA_LOGGED_OUT_ELSEWHERE,
    StatusCode.DC_UNDEFINED_ERROR,
)
"""The status codes that mean the data center failed or refused (not 1704-1706, a caller's bad parameter)."""

_DC_ERRORS_SQL: Final = ", ".join(str(int(code)) for code in DC_ERRORS)

LEVEL_EVENTS: Final = {"CardDetected": 1, "CardAuthenticated": 2, "HpcPinVerified": 3}
"""The events of an insertion that raise its card's level, and the level each reaches."""

PIN_ATTEMPTS: Final = {
    # type: (card, secret, outcome)
    "HpcPinVerified": ("hpc", "PIN", "verified"),
    "HpcPinRejected": ("hpc", "PIN", "rejected"),
    "HpcPukRejected": ("hpc", "PUK", "rejected"),
    "HpcPinReset": ("hpc", "PUK", "verified"),
    "HcPinVerified": ("hc", "PIN", "verified"),
    "HcPinRejected": ("hc", "PIN", "rejected"),
}
"""Every event that is the outcome of a PIN or PUK presented to a card."""

SETTINGS_CHANGES: Final = {
    # type: (setting, the payload field that names the value)
    "CorsHostAllowed": ("cors", "host"),
    "CorsHostRemoved": ("cors", "host"),
    "DefaultReaderSet": ("default_reader", "reader"),
    "DefaultReaderCleared": ("default_reader", None),
    "CloudSamImported": ("cloud_sam", "sam_id"),
    "CloudSamRemoved": ("cloud_sam", "sam_id"),
}

PIN_REJECTIONS: Final = tuple(name for name, (_, _, outcome) in PIN_ATTEMPTS.items() if outcome == "rejected")
"""The events of a PIN or PUK the card refused (or that was refused for a blocked card)."""

FAULT_EVENTS: Final = ("WorkerLost", "SamVerificationFailed", "CardAuthenticationFailed")
"""Events that are faults: a reader's worker lost, and a DC's or card's refusal of an authentication."""


def _in(names: Iterable[str]) -> str:
    """An SQL list of event types (names of our own classes: no quoting needed, none is ever a caller's)."""
    return ", ".join(f"'{name}'" for name in names)


def _case(mapping: Mapping[str, tuple[object, ...]], pick: int) -> str:
    """The `pick`th item of an event type's entry in `mapping`, as SQL on the alias `e`."""
    arms = " ".join(f"WHEN '{name}' THEN {_sql_value(value[pick])}" for name, value in mapping.items())
    return f"CASE e.type {arms} END"


def _sql_value(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return f"'{value}'"


Sources = tuple[str, ...]
"""Where the rows are, as table-name prefixes: `("",)` for a file's own `events` and `calls`; in the query
surface one prefix per attached file (`("archive_1_", "live_")`: its TEMP views `archive_1_events`, ...)."""

OWN_TABLES: Final[Sources] = ("",)


def _of_session(alias: str, outer: str) -> str:
    """The events of the same insertion as `outer`'s (the session number is unique; the reader double-checks)."""
    return (
        f"{field('session', alias)} = {field('session', outer)} AND {field('reader', alias)} = {field('reader', outer)}"
    )


def _rows(select: str, table: str, alias: str, where: str, sources: Sources) -> str:
    """A FROM item: `select` over the rows of `table` (`events` or `calls`) matching `where`, in every source.

    Why each correlated lookup is written this way rather than as `FROM events r WHERE ...`: over the query
    surface, `events` is a UNION ALL of several files, and SQLite does not carry a correlated condition (the
    same session as the outer row's) into a compound view; each lookup then read every row of its type in every
    file, 28 s for one card's history over 1,000,000 events (bench/audit_query.py). Written once per file, the
    condition is on that file's own table and its index answers it. In a single file it is one arm, which
    SQLite flattens into the plain lookup."""
    arms = [f"SELECT {select} FROM {prefix}{table} {alias} WHERE {where}" for prefix in sources]
    return "(" + " UNION ALL ".join(arms) + ")"


def _card_sessions(sources: Sources) -> str:
    def of_session(select: str, where: str) -> str:
        return _rows(select, "events", "r", f"{_of_session('r', 'i')} AND {where}", sources)

    levels = " ".join(f"WHEN '{t}' THEN {n}" for t, n in LEVEL_EVENTS.items())
    cause = field("caused_by", "r")
    return f"""
SELECT
  i.seq AS inserted_seq,
  i.recorded_at AS inserted_at,
  {field("reader", "i")} AS reader,
  {field("session", "i")} AS session,
  {field("kind", "i")} AS kind,
  {field("card_type", "i")} AS card_type,
  {field("card_ref", "i")} AS card_ref,
  (SELECT min(x) FROM {of_session("r.recorded_at AS x", "r.type = 'CardRemoved'")}) AS removed_at,
  (SELECT x FROM {of_session(f"r.seq AS k, {field('reason', 'r')} AS x", "r.type = 'CardRemoved'")}
    ORDER BY k LIMIT 1) AS removal_reason,
  coalesce((SELECT max(CASE t {levels} END) FROM {of_session("r.type AS t", f"r.type IN ({_in(LEVEL_EVENTS)})")}),
    0) AS level_reached,
  (SELECT count(*) FROM {of_session("1 AS x", "r.type = 'CardDataRead'")}) AS reads,
  (SELECT count(*) FROM {of_session("1 AS x", f"r.type IN ({_in(PIN_REJECTIONS)})")}) AS pin_failures,
  (SELECT count(DISTINCT x) FROM {of_session(f"{cause} AS x", f"{cause} IS NOT NULL")}) AS calls
FROM events i
WHERE i.type = 'CardInserted'
"""


def _caller_of(cause: str, sources: Sources) -> str:
    """The caller of the call that caused an event (`cause`: its caused_by), from the call record."""
    calls = _rows("c.seq AS k, c.caller AS x", "calls", "c", f"c.uuid = {cause}", sources)
    return f"(SELECT x FROM {calls} ORDER BY k LIMIT 1)"


def _pin_attempts(sources: Sources) -> str:
    insertion = _rows(
        f"i.seq AS k, {field('card_ref', 'i')} AS x",
        "events",
        "i",
        f"{_of_session('i', 'e')} AND i.type = 'CardInserted'",
        sources,
    )
    return f"""
SELECT
  e.seq AS seq,
  e.recorded_at AS recorded_at,
  {day("e.recorded_at")} AS day,
  {_case(PIN_ATTEMPTS, 0)} AS card,
  {_case(PIN_ATTEMPTS, 1)} AS secret,
  CASE WHEN {field("blocked", "e")} THEN 'blocked' ELSE {_case(PIN_ATTEMPTS, 2)} END AS outcome,
  {field("tries_left", "e")} AS tries_left,
  {field("reader", "e")} AS reader,
  {field("session", "e")} AS session,
  (SELECT x FROM {insertion} ORDER BY k LIMIT 1) AS card_ref,
  {field("caused_by", "e")} AS caused_by,
  {_caller_of(field("caused_by", "e"), sources)} AS caller
FROM events e
WHERE e.type IN ({_in(PIN_ATTEMPTS)})
"""


def _sam_sessions(sources: Sources) -> str:
    """One row per Initial; it ends at the next SessionFinalized (or is cut short by the next Initial)."""

    def after_start(select: str, alias: str, where: str) -> str:
        return _rows(select, "events", alias, f"{alias}.seq > b.started_seq AND {where}", sources)

    def within(event_type: str) -> str:
        rows = after_start("1 AS x", "e", f"e.type = '{event_type}' AND (b.bound_seq IS NULL OR e.seq < b.bound_seq)")
        return f"(SELECT count(*) FROM {rows})"

    bound = _rows(
        "n.seq AS x", "events", "n", "n.type IN ('SessionFinalized', 'SessionInitialized') AND n.seq > s.seq", sources
    )
    ending = _rows(
        f"f.recorded_at AS at, {field('reason', 'f')} AS x",
        "events",
        "f",
        "f.seq = b.bound_seq AND f.type = 'SessionFinalized'",
        sources,
    )
    return f"""
SELECT
  b.started_seq,
  b.started_at,
  b.device,
  b.sam_type,
  b.reader,
  b.caused_by,
  (SELECT at FROM {ending}) AS ended_at,
  (SELECT x FROM {ending}) AS end_reason,
  {within("SamVerified")} AS verifications,
  {within("SamVerificationFailed")} AS verification_failures,
  {within("SamSessionExpired")} AS expiries
FROM (
  SELECT
    s.seq AS started_seq,
    s.recorded_at AS started_at,
    {field("device", "s")} AS device,
    {field("sam_type", "s")} AS sam_type,
    {field("reader", "s")} AS reader,
    {field("caused_by", "s")} AS caused_by,
    (SELECT min(x) FROM {bound}) AS bound_seq
  FROM events s
  WHERE s.type = 'SessionInitialized'
) b
"""


_VALUE_OF_SETTING: Final = (
    "CASE e.type "
    + " ".join(
        f"WHEN '{name}' THEN {field(value, 'e') if value else 'NULL'}" for name, (_, value) in SETTINGS_CHANGES.items()
    )
    + " END"
)


def _settings_changes(sources: Sources) -> str:
    return f"""
SELECT
  e.seq AS seq,
  e.recorded_at AS recorded_at,
  {_case(SETTINGS_CHANGES, 0)} AS setting,
  e.type AS change,
  {_VALUE_OF_SETTING} AS value,
  {field("caused_by", "e")} AS caused_by,
  {_caller_of(field("caused_by", "e"), sources)} AS caller
FROM events e
WHERE e.type IN ({_in(SETTINGS_CHANGES)})
"""


def _refusals(_sources: Sources) -> str:
    return f"""
SELECT
  e.seq AS seq,
  e.recorded_at AS recorded_at,
  {day("e.recorded_at")} AS day,
  {field("status", "e")} AS status,
  {field("caller", "e")} AS caller,
  {field("url", "e")} AS url,
  {field("reason", "e")} AS reason,
  {field("caused_by", "e")} AS request_id
FROM events e
WHERE e.type = 'CallRefused'
"""


def _faults(_sources: Sources) -> str:
    return f"""
SELECT
  e.recorded_at AS recorded_at,
  {day("e.recorded_at")} AS day,
  CASE e.type WHEN 'WorkerLost' THEN 'worker_lost' ELSE 'authentication_failed' END AS kind,
  e.type AS source,
  e.seq AS event_seq,
  NULL AS call_seq,
  {field("code", "e")} AS code,
  {field("reader", "e")} AS reader,
  {field("reason", "e")} AS reason,
  NULL AS url,
  {field("caused_by", "e")} AS caused_by
FROM events e
WHERE e.type IN ({_in(FAULT_EVENTS)})
UNION ALL
SELECT
  c.timestamp AS recorded_at,
  {day("c.timestamp")} AS day,
  'dc_error' AS kind,
  'calls' AS source,
  NULL AS event_seq,
  c.seq AS call_seq,
  c.status_code AS code,
  NULL AS reader,
  NULL AS reason,
  c.url AS url,
  c.uuid AS caused_by
FROM calls c
WHERE c.status_code IN ({_DC_ERRORS_SQL})
"""


def _call_touches(_sources: Sources) -> str:
    """Not DISTINCT on purpose: a plain projection of `events` is flattened into a join, so its index on the
    session answers `JOIN call_touches ON session` (0.4 ms for one card in a file of 500,000 events; DISTINCT
    made SQLite build the whole view first, 1.1 s). A call with several events in one session has several rows."""
    return f"""
SELECT
  {field("caused_by", "e")} AS call_uuid,
  {field("reader", "e")} AS reader,
  {field("session", "e")} AS session,
  e.seq AS event_seq,
  e.type AS event_type
FROM events e
WHERE {field("caused_by", "e")} IS NOT NULL AND {field("session", "e")} IS NOT NULL
"""


@dataclass(frozen=True)
class View:
    """One audit view: its SELECT (over `events` and `calls`, its lookups over `sources`) and what it answers."""

    body: Callable[[Sources], str]
    description: str


VIEWS: Final[dict[str, View]] = {
    "card_sessions": View(
        _card_sessions,
        "One row per card insertion (the worker's session number), from insertion to removal: the card's "
        "pseudonym, the highest level reached (1 read, 2 authenticated with the SAM, 3 staff PIN), data reads, PIN "
        "failures and how many calls touched it.",
    ),
    "pin_attempts": View(
        _pin_attempts,
        "Every PIN or PUK presented to a staff or health card: outcome (verified, rejected, blocked), tries left, "
        "the card's pseudonym, and the call (and its caller) that presented it.",
    ),
    "sam_sessions": View(
        _sam_sessions,
        "One row per Initial: the SAM used, when it ended and why, and its verifications, failures and expiries.",
    ),
    "settings_changes": View(
        _settings_changes,
        "Every change of the CORS allow-list, the default reader and the cloud SAMs, with the call and caller "
        "that made it.",
    ),
    "refusals": View(
        _refusals,
        "Every request refused before anything ran: 403 (origin or fetch metadata), 421 (Host), 415 (not JSON), "
        "by origin and path.",
    ),
    "faults": View(
        _faults,
        "DC errors (calls answered 1700-1703, 1707, 1799), authentications refused (SAM or card, with code) and "
        "readers' workers lost.",
    ),
    "call_touches": View(
        _call_touches,
        "Which call touched which card insertion: one row per event a call caused in a card's session (the call's "
        "uuid, the reader and session, the event). Join with calls on uuid and card_sessions on reader and "
        "session; SELECT DISTINCT for one row per call.",
    ),
}
"""The audit views by name (docs/audit.md, the Datasette metadata and the tests read the same entries)."""

CALLS_DESCRIPTION: Final = (
    "The call record: every /api/ call with its URL (the endpoint), the spec's status code, its uuid (the "
    "X-Request-Id, which the events it caused carry as caused_by) and its caller (the allowed Origin, or native; "
    "NULL for calls recorded before callers were kept)."
)

INDEXES: Final = (
    "CREATE INDEX IF NOT EXISTS events_by_type ON events (type, seq)",
    f"CREATE INDEX IF NOT EXISTS events_by_session ON events ({field('session')})",
    f"CREATE INDEX IF NOT EXISTS events_by_card_ref ON events ({field('card_ref')})",
    f"CREATE INDEX IF NOT EXISTS events_by_cause ON events ({field('caused_by')})",
    "CREATE INDEX IF NOT EXISTS calls_by_uuid ON calls (uuid)",
)
"""What one card's history, a call's events and a type's rows are found by (see the module's docstring)."""


def create_views(temp: bool, sources: Sources = OWN_TABLES) -> tuple[str, ...]:
    """The CREATE VIEW statements: stored in a file (over its own tables), or the query surface's TEMP ones."""
    kind = "TEMP VIEW" if temp else "VIEW"
    return tuple(f"CREATE {kind} IF NOT EXISTS {name} AS {view.body(sources).strip()}" for name, view in VIEWS.items())


LIVE_STATEMENTS: Final[tuple[str, ...]] = INDEXES + create_views(temp=False)
"""Run by the v2 -> v3 migration, in its transaction."""

ARCHIVE_STATEMENTS: Final[tuple[str, ...]] = LIVE_STATEMENTS
"""Run when an archive is written: the same indexes and views, so an archive answers for its own rows alone."""
