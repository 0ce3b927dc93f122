"""Listing pcscd's readers off the loop: the broker's discovery, and a reader agent's (issue 23)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PcscDiscovery:
    """Lists pcscd's readers every `interval` in a thread, so a hung pcscd never stalls the broker loop."""

    def __init__(self, list_readers: Callable[[], list[str]], interval: float = 0.5) -> None:
        self._list_readers = list_readers
        self._interval = interval
        self._readers: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pcsc-discovery", daemon=True)

    def start(self) -> None:
        # The first listing before the broker serves anyone: a worker adopted after a broker restart
        # must not report before its reader is known, or it would be told it is not wanted.
        self._list_once()
        self._thread.start()

    def _list_once(self) -> None:
        try:
            found = frozenset(self._list_readers())
        except Exception:  # a broken PC/SC stack must not kill discovery; readers vanish instead
            log.exception("listing PC/SC readers failed")
            found = frozenset()
        with self._lock:
            self._readers = found

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._list_once()

    def readers(self) -> frozenset[str]:
        with self._lock:
            return self._readers

    def stop(self) -> None:
        self._stop.set()
