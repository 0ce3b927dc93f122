"""One table for every benchmark: each measure, its value, the target it is held to, and whether it met it."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    section: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "NOT met")

    def text(self) -> str:
        return f"{self.section:<30} {self.measure:<52} {self.value:<34} {self.target:<12} {self.verdict}"


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def markdown(rows: list[Row], notes: str, when: datetime.datetime) -> str:
    lines = [
        "# Performance",
        "",
        f"Measured by `make bench` (bench/performance.py) on {when:%Y-%m-%d %H:%M %Z}: {machine()}.",
        "",
        "| section | measure | value | target | |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.section} | {r.measure} | {r.value} | {r.target} | {r.verdict} |" for r in rows]
    return "\n".join(lines) + "\n\n" + notes
