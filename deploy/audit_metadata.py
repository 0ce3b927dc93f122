"""The Datasette metadata for a `log copy`: each view's and table's description, from eventlog/audit_views.py.

Generated rather than kept as a file, so a view's description is written once (its definition's module) and the
docs, the CLI and Datasette cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from eventlog.audit_views import CALLS_DESCRIPTION, VIEWS

EVENTS_DESCRIPTION: Final = (
    "The event log: every fact the console recorded, in order (seq), with its type, version and JSON payload "
    "(never a card number, a name or a secret; a card is its keyed pseudonym card_ref) and the hash chain."
)


def metadata(database_name: str) -> dict[str, Any]:
    tables = {name: {"description": view.description} for name, view in VIEWS.items()}
    tables["calls"] = {"description": CALLS_DESCRIPTION}
    tables["events"] = {"description": EVENTS_DESCRIPTION}
    return {
        "title": "nhi-console audit log",
        "description": "A read-only copy of the console's event log and call record with the audit views "
        "(docs/audit.md). Opened immutable: nothing here can change the console's log.",
        "databases": {database_name: {"tables": tables}},
    }


def write_metadata(copy: Path) -> Path:
    """`<copy>.metadata.json` beside the copy; its path."""
    target = copy.with_name(copy.stem + ".metadata.json")
    target.write_text(json.dumps(metadata(copy.stem), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return target
