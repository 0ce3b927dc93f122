"""`nhi-console status`: the Status object as a table a person at the counter can read."""

from __future__ import annotations

from typing import Any

SAM_LEVELS = {0: "none", 1: "present", 2: "verified with the DC"}
SAM_TYPES = {0: "-", 1: "cloud SAM", 2: "physical SAM"}
HPC_LEVELS = {0: "none", 1: "present", 2: "authenticated", 3: "PIN verified"}
HPC_TYPES = {0: "-", 1: "doctor card", 2: "staff card", 3: "mobile HCA"}
HC_LEVELS = {0: "none", 1: "present", 2: "authenticated", 3: "authenticated with HPC"}
HC_TYPES = {0: "-", 1: "physical", 2: "virtual"}


def _tri(value: bool | None, unknown: str) -> str:
    return unknown if value is None else ("yes" if value else "no")


def _level(levels: dict[int, str], value: int) -> str:
    return f"{value} ({levels.get(value, 'unknown')})"


def render_status_table(status: dict[str, Any], url: str) -> str:
    sam, hpc, hc = status["sam"], status["hpc"], status["hc"]
    rows = [
        ("console", url),
        ("initialized", "yes" if status["initialized"] else "no"),
        ("device", status["name"] or "-"),
        ("reader", status["readerName"] or "-"),
        ("SAM", f"{_level(SAM_LEVELS, sam['status'])}, {SAM_TYPES.get(sam['type'], sam['type'])}"),
        ("SAM expires", sam["expireTime"] or "-"),
        ("staff card", f"{_level(HPC_LEVELS, hpc['status'])}, {HPC_TYPES.get(hpc['type'], hpc['type'])}"),
        ("staff card expires", hpc["expireTime"] or "-"),
        ("health card", f"{_level(HC_LEVELS, hc['status'])}, {HC_TYPES.get(hc['type'], hc['type'])}"),
        ("health card expires", hc["expireTime"] or "-"),
        ("health card PIN", f"set: {_tri(hc['hasPin'], 'not read yet')}, verified: {_tri(hc['verifiedPin'], '-')}"),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
