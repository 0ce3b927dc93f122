"""How `make test` spreads the suite over the machine's cores (pytest-xdist, `-n`; tests/run.sh).

The machine has one pcscd socket, so every test that uses the `pcscd` fixture runs in one xdist worker, in
the modules listed here. xdist's own `--dist loadgroup` cannot do it with pytest 9.2 (it renames
`item._nodeid`, which pytest 9.2 no longer reads), so the grouping is this small scheduler of ours;
tests/integration/conftest.py fails the collection if a test outside these modules asks for pcscd.
"""

from __future__ import annotations

from typing import Any

import pytest

PCSCD_MODULES = frozenset(
    {
        "tests/integration/test_crash_safety.py",
        "tests/integration/test_deploy.py",
        "tests/integration/test_pcsc_console.py",
        "tests/integration/test_pcsc_stack.py",
        "tests/integration/test_recovery_console.py",
        "tests/integration/test_remote_readers_pcsc.py",
    }
)
"""The test modules that use the machine's pcscd: one xdist scope, so one worker runs them all."""


def pcscd_scope(nodeid: str) -> str:
    """The xdist scope of a test: `pcscd` for the PC/SC modules, the test itself otherwise."""
    return "pcscd" if nodeid.split("::", 1)[0] in PCSCD_MODULES else nodeid


@pytest.hookimpl(optionalhook=True)  # only a hook where pytest-xdist is installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class OnePcscdWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return pcscd_scope(nodeid)

    return OnePcscdWorker(config, log)
