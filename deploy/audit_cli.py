"""`nhi-console log query|card|report|copy`: the auditor's questions over the whole history (docs/audit.md).

All four read through the audit surface (eventlog/audit_query.py): read-only by construction, archives and the
live log together, safe while the console runs. Rendering only here; the questions are eventlog/audit_reports.py.

A card number is read, used once to compute the installation's keyed pseudonym, and dropped: it is never
printed, logged or written. Pass `-` to read it from standard input, so it is not in a process argument (or a
shell's history) either.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Final, TextIO

from broker.domain.pseudonyms import Pseudonyms, load_key
from deploy.paths import console_paths

CARD_NUMBER: Final = re.compile(r"[0-9A-Za-z]{1,32}")
"""A card number as the cards hold one (a health card's 12 digits, a staff card's); nothing else is looked up."""

COPY_BATCH: Final = 5_000


def add_audit_commands(base: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register `log query|card|report|copy` (log_cli.py's `base` adds --data-dir and --sim)."""
    query = base("query", "run one read-only SQL statement over the whole history (the audit views, docs/audit.md)")
    query.add_argument("sql", help="e.g. \"SELECT * FROM refusals WHERE day = '2026-12-01'\"")
    query.add_argument("--param", action="append", default=[], help="a value for a ? in the SQL (repeatable)")
    formats = query.add_mutually_exclusive_group()
    for name in ("table", "csv", "json"):
        formats.add_argument(f"--{name}", dest="format", action="store_const", const=name)
    query.set_defaults(handler=query_log, format="table")

    card = base("card", "one card's history: sessions, levels, PIN outcomes, the calls that touched it")
    card.add_argument("card_number", metavar="CARDNO", help="the card's number, or - to read it from standard input")
    card.add_argument("--json", action="store_true", help="JSON instead of tables")
    card.set_defaults(handler=card_log)

    report = base("report", "day by day: calls, PIN failures, refusals, DC errors, worker losses, card sessions")
    report.add_argument("--from", dest="first", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    report.add_argument("--to", dest="last", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    report.add_argument("--json", action="store_true", help="JSON instead of tables")
    report.set_defaults(handler=report_log)

    copy = base("copy", "one self-contained file of the whole history with the views, for Datasette")
    copy.add_argument("output", type=Path, metavar="OUT.db", help="a new file (never overwritten)")
    copy.set_defaults(handler=copy_log)


def _surface(args: argparse.Namespace) -> Any:
    from eventlog.audit_query import AuditQuery

    database = console_paths(args.data_dir, sim=args.sim).database
    try:
        return AuditQuery(database)
    except (FileNotFoundError, RuntimeError) as error:
        raise SystemExit(str(error)) from None


def _cell(value: Any) -> Any:
    """bytes (the chains' hashes, payloads) as text a terminal, a CSV and JSON can all hold."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.hex()
    return value


def _print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    from tabulate import tabulate  # sqlite-utils' own table renderer

    print(tabulate([[_cell(value) for value in row] for row in rows], headers=list(columns)), file=out)


def query_log(args: argparse.Namespace) -> int:
    from eventlog.audit_query import QueryRefused

    with _surface(args) as surface:
        try:
            result = surface.query(args.sql, args.param)
        except QueryRefused as refusal:
            print(f"nhi-console log query: {refusal}", file=sys.stderr)
            return 2
    if args.format == "json":
        rows = [{name: _cell(value) for name, value in zip(result.columns, row, strict=True)} for row in result.rows]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        print()
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows([_cell(value) for value in row] for row in result.rows)
    else:
        _print_table(result.columns, result.rows, sys.stdout)
    return 0


def _read_card_number(argument: str) -> str:
    text = sys.stdin.readline().strip() if argument == "-" else argument.strip()
    if not CARD_NUMBER.fullmatch(text):
        raise SystemExit("nhi-console log card: a card number is 1 to 32 letters or digits")
    return text


def card_log(args: argparse.Namespace) -> int:
    from eventlog.audit_reports import card_history

    paths = console_paths(args.data_dir, sim=args.sim)
    try:
        key = load_key(paths.pseudonym_key)
    except FileNotFoundError:
        raise SystemExit(f"no pseudonym key at {paths.pseudonym_key}: this console never saw a card") from None
    card_ref = Pseudonyms(key).card(_read_card_number(args.card_number))
    with _surface(args) as surface:
        history = card_history(surface, card_ref)
    if args.json:
        json.dump(history.as_json(), sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"card {card_ref}: {len(history.sessions)} sessions, {len(history.calls)} calls")
    for title, rows in (
        ("sessions", history.sessions),
        ("PIN attempts", history.pin_attempts),
        ("calls that touched it", history.calls),
    ):
        print(f"\n{title}")
        if rows:
            _print_table(list(rows[0]), [list(row.values()) for row in rows], sys.stdout)
        else:
            print("(none)")
    return 0


def report_log(args: argparse.Namespace) -> int:
    from eventlog.audit_reports import REPORT_SECTIONS, day_report

    with _surface(args) as surface:
        try:
            report = day_report(surface, args.first, args.last)
        except ValueError as error:
            raise SystemExit(f"nhi-console log report: {error}") from None
    if args.json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"from {report['from']} to {report['to']}: {len(report['days'])} days with activity")
    for day in report["days"]:
        print(f"\n== {day['day']}")
        for section in REPORT_SECTIONS:
            rows = day[section]
            print(f"-- {section.replace('_', ' ')}: {sum(row['count'] for row in rows)}")
            if rows:
                _print_table(list(rows[0]), [list(row.values()) for row in rows], sys.stdout)
    return 0


def copy_log(args: argparse.Namespace) -> int:
    from deploy.audit_metadata import write_metadata
    from eventlog.audit_copy import copy_history

    output: Path = args.output
    if output.exists():
        raise SystemExit(f"nhi-console log copy: {output} exists; the copy is always a new file")
    with _surface(args) as surface:
        counts = copy_history(surface, output)
    metadata = write_metadata(output)
    print(f"{output}: {counts['events']} events, {counts['calls']} calls, with the audit views")
    print(f"{metadata}: the views' descriptions for Datasette")
    print(f"browse it: datasette -i {output} --metadata {metadata}")
    return 0
