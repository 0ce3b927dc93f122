from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.console import RunningConsole, descendants, start_console


@pytest.fixture
def console(tmp_path: Path) -> Iterator[RunningConsole]:
    running = start_console(tmp_path / "data")
    started = descendants(running.process.pid)
    try:
        yield running
    finally:
        running.stop()
        for pid in started | descendants(running.process.pid):
            try:
                import os
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
