"""What `nhi-console log card` and `log report` ask the audit surface: the SQL, written once, over the views.

Pure questions over an `AuditQuery` (eventlog/audit_query.py); the CLI (deploy/audit_cli.py) only renders the
answers. Every query here names the documented views, so docs/audit.md can show an auditor the same SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from eventlog.audit_query import AuditQuery

CARD_SESSIONS_SQL: Final = "SELECT * FROM card_sessions WHERE card_ref = ? ORDER BY inserted_seq"

IN_LIST_CHUNK: Final = 500
"""Values per `IN (...)` list: SQLite binds at most 32,766 parameters a statement, and a staff card of ten years
has thousands of sessions and many more calls."""


def card_pin_attempts_sql(count: int) -> str:
    return (
        "SELECT seq, recorded_at, card, secret, outcome, tries_left, reader, session, caused_by, caller"
        f" FROM pin_attempts WHERE session IN ({_marks(count)}) ORDER BY seq"
    )


def card_touches_sql(count: int) -> str:
    return f"SELECT call_uuid, reader, session FROM call_touches WHERE session IN ({_marks(count)})"


def calls_sql(count: int) -> str:
    return f"SELECT seq, timestamp, url, status_code, caller, uuid FROM calls WHERE uuid IN ({_marks(count)})"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), IN_LIST_CHUNK):
        yield values[start : start + IN_LIST_CHUNK]


@dataclass(frozen=True)
class CardHistory:
    """One card's history: its insertions, the PINs presented to it, the calls whose events touched it."""

    card_ref: str
    sessions: list[dict[str, Any]]
    pin_attempts: list[dict[str, Any]]
    calls: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {
            "cardRef": self.card_ref,
            "sessions": self.sessions,
            "pinAttempts": self.pin_attempts,
            "calls": self.calls,
        }


def card_history(surface: AuditQuery, card_ref: str) -> CardHistory:
    """The card's sessions by its pseudonym, then what happened in those sessions by their numbers.

    Why in steps, with the numbers as constants rather than one join: a constant `session IN (...)` is carried
    into every archive's and the live log's own index; a join or an `IN (SELECT ...)` over the surface's union is
    not, and read every file whole (2.6 s instead of 1 ms over 1,000,000 events, bench/audit_query.py). The
    views answer each step; a session is a reader and a number, matched on both."""
    sessions = list(surface.rows(CARD_SESSIONS_SQL, (card_ref,)))
    keys = {(row["reader"], row["session"]) for row in sessions}
    numbers = sorted({session for _, session in keys})
    pins: list[dict[str, Any]] = []
    touches: dict[str, set[tuple[str, int]]] = {}
    for chunk in _chunks(numbers):
        pins += [row for row in surface.rows(card_pin_attempts_sql(len(chunk)), chunk) if _key(row) in keys]
        for row in surface.rows(card_touches_sql(len(chunk)), chunk):
            if _key(row) in keys:
                touches.setdefault(row["call_uuid"], set()).add(_key(row))
    calls: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(touches)):
        for row in surface.rows(calls_sql(len(chunk)), chunk):
            calls += [{**row, "reader": reader, "session": session} for reader, session in sorted(touches[row["uuid"]])]
    pins.sort(key=lambda row: row["seq"])
    calls.sort(key=lambda row: (row["seq"], row["session"]))
    return CardHistory(card_ref=card_ref, sessions=sessions, pin_attempts=pins, calls=calls)


def _key(row: dict[str, Any]) -> tuple[str, int]:
    return row["reader"], row["session"]


# -- the day-by-day report -------------------------------------------------------------------------------------

REPORT_SECTIONS: Final[dict[str, str]] = {
    "calls": "SELECT day, url, status_code, count(*) AS count FROM"
    " (SELECT substr(timestamp, 1, 10) AS day, url, status_code FROM calls)"
    " WHERE day BETWEEN ? AND ? GROUP BY day, url, status_code ORDER BY day, url, status_code",
    "pin_failures": "SELECT day, card, card_ref, count(*) AS count FROM pin_attempts"
    " WHERE outcome IN ('rejected', 'blocked') AND day BETWEEN ? AND ?"
    " GROUP BY day, card, card_ref ORDER BY day, card, card_ref",
    "refusals": "SELECT day, caller, status, count(*) AS count FROM refusals WHERE day BETWEEN ? AND ?"
    " GROUP BY day, caller, status ORDER BY day, caller, status",
    "dc_errors": "SELECT day, url, code, count(*) AS count FROM faults WHERE kind = 'dc_error' AND day BETWEEN ? AND ?"
    " GROUP BY day, url, code ORDER BY day, url, code",
    "worker_losses": "SELECT day, reader, count(*) AS count FROM faults WHERE kind = 'worker_lost'"
    " AND day BETWEEN ? AND ? GROUP BY day, reader ORDER BY day, reader",
    "card_sessions": "SELECT day, kind, count(*) AS count FROM"
    " (SELECT substr(inserted_at, 1, 10) AS day, kind FROM card_sessions)"
    " WHERE day BETWEEN ? AND ? GROUP BY day, kind ORDER BY day, kind",
}
"""Each section of `log report`: counts per day (the console's local date) and per what the section is about."""


def day_report(surface: AuditQuery, first: date, last: date) -> dict[str, Any]:
    """Counts per day from `first` to `last` (inclusive): {"from", "to", "days": [{"day", section: rows}]}."""
    if last < first:
        raise ValueError("the report's --to is before its --from")
    bounds = (first.isoformat(), last.isoformat())
    days: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for section, sql in REPORT_SECTIONS.items():
        for row in surface.rows(sql, bounds):
            day = row.pop("day")
            days.setdefault(day, {name: [] for name in REPORT_SECTIONS})[section].append(row)
    return {
        "from": bounds[0],
        "to": bounds[1],
        "days": [{"day": day, **sections} for day, sections in sorted(days.items())],
    }


def section_total(report: dict[str, Any], section: str) -> int:
    """The sum of one section's counts over every day of a report."""
    return sum(row["count"] for day in report["days"] for row in day[section])
