"""`nhi-console log copy`: the whole history (archives and live log) as one self-contained SQLite file.

Why a copy: an auditor browses it with Datasette, or takes it away, without touching the console's files; it
has the live log's tables (every row with its chain hashes), the audit indexes and the audit views, so the same
questions have the same SQL there (docs/audit.md). Written with sqlite-utils (batched inserts into tables made
from the store's own DDL, so the copy's layout is the log's) into a temporary name, renamed when complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import sqlite_utils

from eventlog.audit_query import AuditQuery
from eventlog.audit_views import INDEXES, OWN_TABLES, VIEWS
from eventlog.sqlite_store import ADD_CALLER_DDL, CALLS_DDL, COLUMNS, EVENTS_DDL

BATCH: Final = 5_000
_HASHES: Final = ("prev_hash", "hash")


def copy_history(surface: AuditQuery, output: Path) -> dict[str, int]:
    """Write every event and call to the new file `output`; the number of rows of each."""
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    database = sqlite_utils.Database(partial)
    counts: dict[str, int] = {}
    try:
        database.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        for ddl in (EVENTS_DDL, CALLS_DDL, ADD_CALLER_DDL):
            database.execute(ddl)
        for table in ("events", "calls"):
            columns = COLUMNS[table] + _HASHES
            rows = surface.rows(f"SELECT {', '.join(columns)} FROM {table} ORDER BY seq")
            database[table].insert_all(rows, batch_size=BATCH)  # type: ignore[union-attr]
            counts[table] = database[table].count
        for statement in INDEXES:
            database.execute(statement)
        for name, view in VIEWS.items():
            database.create_view(name, view.body(OWN_TABLES).strip())
        database.conn.commit()
    finally:
        database.close()
    os.replace(partial, output)
    return counts
