"""The audit query surface: read-only SQL over the whole history (sealed archives and the live log together).

How it is read-only by construction, three times over, so that no statement an auditor types can change the
log (docs/audit.md):
- every file is attached through a `mode=ro` URI (an archive also `immutable=1`: nothing writes it again), so
  SQLite itself refuses to write it;
- `PRAGMA query_only` refuses any write, even to the in-memory main database;
- an authorizer allows reading and computing only (SELECT, reading columns, functions, recursive CTEs): a
  DELETE, UPDATE, INSERT, CREATE, DROP, ATTACH, DETACH, PRAGMA or transaction is refused when it is prepared,
  before it runs.

The surface is an in-memory database with the files attached, and TEMP views: `live_events`, `archive_1_events`,
... (and `_calls`): each file's rows in the surface's columns (NULL for a column an older file lacks); `events`
and `calls` as their UNION ALL (archives first, in seq order); and the audit views of eventlog/audit_views.py over
them, whose correlated lookups are written once per file so that each file's indexes answer them. A query names
`events`, `calls`, `card_sessions`, ... and sees the whole history; `live.events` and `archive_1.events` name one
file's rows.

SQLite attaches at most 10 files to one connection. Past that many archives, the oldest are copied into one
temporary file (in the system's temp directory, deleted on close) first: slower to open, the same answers.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eventlog.audit_views import INDEXES, create_views
from eventlog.sqlite_store import (
    ADD_CALLER_DDL,
    CALLS_DDL,
    COLUMNS,
    EVENTS_DDL,
    READABLE_VERSIONS,
    archive_path,
    load_segments,
    read_only_uri,
)

ATTACH_LIMIT: Final = 10
"""SQLite's compile-time maximum of attached databases (SQLITE_MAX_ATTACHED's default, Debian's build)."""

_HASHES: Final = ("prev_hash", "hash")
"""The union views keep each row's chain hashes: an auditor can compare them with a checkpoint."""

_ALLOWED: Final = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
    }
)


class QueryRefused(ValueError):
    """A statement the surface does not run: one that would write, attach, change a setting, or is not SQL."""


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def _authorize(action: int, _arg1: str | None, _arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    """Reading only: anything else is refused while the statement is prepared, before a byte is touched."""
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


class AuditQuery:
    """The whole history as one read-only database (see the module's docstring). Use as a context manager."""

    def __init__(self, database: Path) -> None:
        self.database: Final = Path(database)
        if not self.database.is_file():
            raise FileNotFoundError(f"no event log at {self.database}")
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        self._conn = sqlite3.connect(":memory:", isolation_level=None, uri=True)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        conn = self._conn
        conn.execute("ATTACH DATABASE ? AS live", (read_only_uri(self.database),))
        conn.execute("PRAGMA live.busy_timeout=5000")
        (version,) = conn.execute("PRAGMA live.user_version").fetchone()
        if version not in READABLE_VERSIONS:
            raise RuntimeError(f"{self.database}: event store schema version {version}, readable: {READABLE_VERSIONS}")
        segments = load_segments(conn, "live")
        archives = [archive_path(self.database.parent, segment) for segment in segments]
        for path in archives:
            if not path.is_file():
                raise FileNotFoundError(f"sealed archive missing: {path} (docs/deploy.md: restore it from the backup)")
        schemas = self._attach_archives(archives)
        for schema in schemas:  # one file's rows, in the surface's columns: simple views, which SQLite flattens
            for table in ("events", "calls"):
                columns = ", ".join(self._columns(schema, table))
                conn.execute(f"CREATE TEMP VIEW {schema}_{table} AS SELECT {columns} FROM {schema}.{table}")
        for table in ("events", "calls"):
            selects = " UNION ALL ".join(f"SELECT * FROM {schema}_{table}" for schema in schemas)
            conn.execute(f"CREATE TEMP VIEW {table} AS {selects}")
        for statement in create_views(temp=True, sources=tuple(f"{schema}_" for schema in schemas)):
            conn.execute(statement)
        conn.execute("PRAGMA query_only=1")
        conn.set_authorizer(_authorize)

    def _attach_archives(self, archives: Sequence[Path]) -> list[str]:
        """Attach every archive (or, past the limit, a merged copy of the oldest); the schemas in seq order."""
        direct = list(archives)
        schemas: list[str] = []
        room = ATTACH_LIMIT - 1  # the live log's
        if len(direct) > room:
            merged_count = len(direct) - room + 1
            merged = self._merge(direct[:merged_count])
            self._conn.execute("ATTACH DATABASE ? AS archive_merged", (read_only_uri(merged),))
            schemas.append("archive_merged")
            direct = direct[merged_count:]
        for number, path in enumerate(direct, start=len(archives) - len(direct) + 1):
            name = f"archive_{number}"
            self._conn.execute(f"ATTACH DATABASE ? AS {name}", (read_only_uri(path) + "&immutable=1",))
            schemas.append(name)
        return [*schemas, "live"]

    def _merge(self, archives: Sequence[Path]) -> Path:
        """One temporary file with the rows of `archives` (one attached at a time), indexed like a live log."""
        self._temp_dir = tempfile.TemporaryDirectory(prefix="nhi-audit-")
        target = Path(self._temp_dir.name) / "merged.db"
        merge = sqlite3.connect(target, isolation_level=None)
        try:
            merge.execute("BEGIN")
            merge.execute(EVENTS_DDL)
            merge.execute(CALLS_DDL)
            merge.execute(ADD_CALLER_DDL)
            for path in archives:
                merge.execute("ATTACH DATABASE ? AS source", (read_only_uri(path) + "&immutable=1",))
                for table in ("events", "calls"):
                    columns = self._columns_of(merge, "source", table)
                    names = ", ".join(COLUMNS[table] + _HASHES)
                    merge.execute(f"INSERT INTO main.{table} ({names}) SELECT {columns}")
                merge.execute("COMMIT")
                merge.execute("DETACH DATABASE source")
                merge.execute("BEGIN")
            for statement in INDEXES:
                merge.execute(statement)
            merge.execute("COMMIT")
        finally:
            merge.close()
        return target

    @staticmethod
    def _columns_of(conn: sqlite3.Connection, schema: str, table: str) -> str:
        names = {row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")}
        picked = [column if column in names else f"NULL AS {column}" for column in COLUMNS[table] + _HASHES]
        return f"{', '.join(picked)} FROM {schema}.{table}"

    def _columns(self, schema: str, table: str) -> tuple[str, ...]:
        names = {row[1] for row in self._conn.execute(f"PRAGMA {schema}.table_info({table})")}
        return tuple(column if column in names else f"NULL AS {column}" for column in COLUMNS[table] + _HASHES)

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> QueryResult:
        """One statement, run read-only; QueryRefused for anything that is not a read (or not valid SQL)."""
        if not sqlite3.complete_statement(sql.strip().rstrip(";") + ";"):
            raise QueryRefused("not one complete SQL statement")
        try:
            cursor = self._conn.execute(sql, tuple(parameters))
        except sqlite3.DatabaseError as error:
            raise QueryRefused(_refusal_text(error)) from error
        except sqlite3.ProgrammingError as error:  # several statements, a wrong number of parameters
            raise QueryRefused(str(error)) from error
        columns = tuple(item[0] for item in cursor.description or ())
        return QueryResult(columns, cursor.fetchall())

    def rows(self, sql: str, parameters: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        """Each row as a dict, under the same refusals as `query`.

        Not sqlite-utils' `Database.query`, which would have done the same: it runs each statement inside a
        SAVEPOINT, a transaction statement this surface's authorizer refuses, as it must."""
        result = self.query(sql, parameters)
        for row in result.rows:
            yield dict(zip(result.columns, row, strict=True))

    def close(self) -> None:
        self._conn.close()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def __enter__(self) -> AuditQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _refusal_text(error: sqlite3.DatabaseError) -> str:
    text = str(error)
    if "not authorized" in text or "readonly" in text or "read-only" in text or "query_only" in text:
        return f"refused: the audit surface only reads ({text})"
    return text
