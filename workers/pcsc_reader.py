"""The production `CardReader`: one PC/SC reader through pcscd, via pyscard's low-level `smartcard.scard`.

Two PC/SC contexts per reader, on purpose.  The watcher thread blocks in
`SCardGetStatusChange` while the worker's main thread transmits; pcsc-lite
serialises the calls of one context, so a shared context would make every
command wait for the presence poll (and `SCardCancel` on it would abort the
wrong call).

The card handle is kept from the first command to the card's removal: pcscd
powers a card off once no handle holds it, and a power cycle forgets a verified
PIN, so a session of several commands must reuse one connection.  Handles are
always released with `SCARD_LEAVE_CARD` for the same reason.

Choices the seam leaves open, documented here because workers rely on them:

* A handle never silently follows a card swap.  When the old card is gone the
  handle answers `SCARD_W_REMOVED_CARD` and the command raises `CardAbsent`,
  so a session can never continue on a different card.  Once this reader's own
  watcher has *reported* the swap (the worker knows it is a new card), the next
  command reconnects first instead of failing.
* `SCARD_W_RESET_CARD` (another application reset the card): the handle is
  re-acknowledged with `SCardReconnect(SCARD_LEAVE_CARD)` and the command is
  retried once, when it is a standalone command or the first of a transaction
  (nothing of the sequence has happened yet; a PIN lost to the reset makes the
  card itself answer 6982, which the worker sees).  Later in a transaction the
  sequence's card state (the selected file) is gone, so that raises `CardReset`
  instead of returning an answer about the wrong file.  Inside a transaction
  nobody else can reset the card, so in practice the reset shows up at
  `SCardBeginTransaction`, which is retried the same way.
* Error messages carry the PC/SC error name and the reader name, never APDU
  bytes: a VERIFY command carries a PIN.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from smartcard import scard

from workers.seam import CardAbsent, PresenceChanged, ReaderError, ReaderGone

log = logging.getLogger(__name__)

_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1

_ABSENT = frozenset(
    {
        scard.SCARD_W_REMOVED_CARD,
        scard.SCARD_E_NO_SMARTCARD,
        scard.SCARD_W_UNPOWERED_CARD,
        scard.SCARD_W_UNRESPONSIVE_CARD,
    }
)
_READER_GONE = frozenset({scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE})
_SERVICE_LOST = frozenset(
    {
        scard.SCARD_E_NO_SERVICE,
        scard.SCARD_E_SERVICE_STOPPED,
        scard.SCARD_E_INVALID_HANDLE,
        scard.SCARD_E_NO_READERS_AVAILABLE,
        scard.SCARD_F_COMM_ERROR,
    }
)

_TRANSPORT_FAILED = frozenset({scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_E_COMM_DATA_LOST, scard.SCARD_F_UNKNOWN_ERROR})

_REMOVAL_NOTICE = 1.5
"""How long a failed command waits for pcscd to notice a pulled card (it polls presence every 400 ms)."""

_BUSY_RETRY = 0.005
"""How often a command retries while another application holds the card exclusively (pcsc-lite polls at 100 ms)."""


def _error_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for name in sorted(dir(scard)):
        if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_", "SCARD_P_")):
            value = getattr(scard, name)
            if isinstance(value, int):
                names.setdefault(value & 0xFFFFFFFF, name)
    return names


_ERROR_NAMES = _error_names()


def error_name(hresult: int) -> str:
    """`SCARD_E_TIMEOUT` rather than 0x8010000A: logs and API errors read the same on every machine."""
    return _ERROR_NAMES.get(hresult & 0xFFFFFFFF, f"0x{hresult & 0xFFFFFFFF:08X}")


class CardReset(ReaderError):
    """Another application reset the card in the middle of this reader's transaction: the sequence's state is lost."""


class _ServiceLost(Exception):
    """Internal: pcscd went away under a context (stopped or restarted); the caller decides what that means."""


def list_pcsc_readers() -> list[str]:
    """The readers pcscd knows now; [] when there are none or pcscd is not running.

    The broker polls this for discovery, where "no pcscd" is a normal state, not an error.
    """
    try:
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    except Exception:  # pyscard raises on some platform failures instead of returning a code
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        return []
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return []
        return list(readers)
    except Exception:
        return []
    finally:
        try:
            scard.SCardReleaseContext(context)
        except Exception:
            pass


def open_reader(name: str) -> PcscReader:
    """The `module:factory` entry a worker is configured with (`workers.pcsc_reader:open_reader`)."""
    return PcscReader(name)


def _establish() -> Any:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise _ServiceLost(error_name(hresult))
    return context


def _release(context: Any) -> None:
    try:
        scard.SCardReleaseContext(context)
    except Exception:
        pass  # a context of a pcscd that is gone cannot be released any more; nothing leaks on our side


class PcscReader:
    """One PC/SC reader slot; `wait_for_change` from one watcher thread, `transmit` from any other thread."""

    def __init__(self, name: str, busy_timeout: float = 10.0) -> None:
        self.name = name
        self.busy_timeout = busy_timeout
        self._closed = False

        # Watcher side: touched only by the thread in wait_for_change (and close, under _watch_lock).
        self._watch_lock = threading.Lock()
        self._watch_context: Any = None
        self._watch_state = scard.SCARD_STATE_UNAWARE
        self._reported: bytes | None = None
        self._first_report_done = False
        self._resync = False
        self._pending: deque[PresenceChanged] = deque()
        self._generation = 0
        """Bumped on every reported change; the transmit side reconnects when it sees a new one."""

        # Transmit side: the RLock lets `transaction()` hold it across its `transmit` calls.
        self._card_lock = threading.RLock()
        self._card_context: Any = None
        self._handle: Any = None
        self._protocol = 0
        self._handle_generation = 0
        self._in_transaction = False
        self._first_in_sequence = False

    # ------------------------------------------------------------------ watcher

    def wait_for_change(self, timeout: float) -> PresenceChanged | None:
        with self._watch_lock:
            if self._closed:
                raise ReaderError(f"reader {self.name!r} is closed")
            if self._pending:
                return self._pending.popleft()
            deadline = time.monotonic() + max(0.0, timeout)
            while True:
                change = self._watch_once(deadline)
                if change is not None or time.monotonic() >= deadline or self._closed:
                    return change

    def _watch_once(self, deadline: float) -> PresenceChanged | None:
        if self._watch_context is None:
            self._watch_context = self._reestablish(deadline)
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        hresult, states = scard.SCardGetStatusChange(
            self._watch_context, remaining_ms, [(self.name, self._watch_state, [])]
        )
        if hresult == scard.SCARD_E_TIMEOUT:
            return None
        if hresult == scard.SCARD_E_CANCELLED:
            return None  # close() woke us up
        if hresult in _SERVICE_LOST:
            # pcscd stopped or restarted: the event counter and any card session died with it.
            _release(self._watch_context)
            self._watch_context = None
            self._watch_state = scard.SCARD_STATE_UNAWARE
            self._resync = True
            self._watch_context = self._reestablish(deadline)
            return None
        if hresult in _READER_GONE:
            self._watch_state = scard.SCARD_STATE_UNAWARE
            self._resync = True  # if it comes back, whatever card it holds is a new session
            raise ReaderGone(f"reader {self.name!r} is gone ({error_name(hresult)})")
        if hresult != scard.SCARD_S_SUCCESS:
            raise ReaderError(f"reader {self.name!r}: SCardGetStatusChange failed ({error_name(hresult)})")
        _, event_state, atr = states[0]
        if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
            self._watch_state = scard.SCARD_STATE_UNAWARE
            self._resync = True  # if it comes back, whatever card it holds is a new session
            raise ReaderGone(f"reader {self.name!r} is gone")
        previous_counter = self._watch_state >> 16
        self._watch_state = event_state & ~scard.SCARD_STATE_CHANGED
        present = bool(event_state & scard.SCARD_STATE_PRESENT)
        current = bytes(atr) if present else None
        if not self._first_report_done:
            self._first_report_done = True
            self._resync = False
            self._reported = current
            return PresenceChanged(current)
        changes: list[PresenceChanged] = []
        swapped = (event_state >> 16) != previous_counter and not self._resync
        if self._reported is not None and (current is None or swapped or self._resync):
            changes.append(PresenceChanged(None))  # the card we reported is gone (or was power-cycled)
        if current is not None and (self._reported is None or changes):
            changes.append(PresenceChanged(current))
        self._resync = False
        self._reported = current
        if not changes:
            return None  # only INUSE/EXCLUSIVE flags moved, or a card came and went unseen
        self._generation += 1
        self._pending.extend(changes[1:])
        return changes[0]

    def _reestablish(self, deadline: float) -> Any:
        """A new watcher context, retried until `deadline` so a pcscd restart is ridden out, not reported."""
        while True:
            try:
                context = _establish()
            except _ServiceLost as error:
                if time.monotonic() >= deadline:
                    raise ReaderGone(f"reader {self.name!r}: pcscd is not available ({error})") from None
                time.sleep(0.05)
                continue
            hresult, readers = scard.SCardListReaders(context, [])
            if hresult == scard.SCARD_S_SUCCESS and self.name in readers:
                return context
            _release(context)
            if time.monotonic() >= deadline:
                raise ReaderGone(f"reader {self.name!r} is not listed by pcscd")
            time.sleep(0.05)

    # ------------------------------------------------------------------ commands

    def transmit(self, apdu: bytes) -> bytes:
        with self._card_lock:
            self._check_open()
            if self._in_transaction:
                first = self._first_in_sequence
                self._first_in_sequence = False
                return self._transmit(apdu, retry_reset=first)
            self._ensure_handle()
            return self._transmit(apdu, retry_reset=True)

    @contextmanager
    def transaction(self) -> Iterator[PcscReader]:
        """Hold the card for a multi-APDU sequence: no other PC/SC client's command lands in between."""
        with self._card_lock:
            self._check_open()
            if self._in_transaction:
                yield self  # nested: the outer transaction already holds the card
                return
            self._ensure_handle()
            self._begin_transaction()
            self._in_transaction = True
            self._first_in_sequence = True
            try:
                yield self
            finally:
                self._in_transaction = False
                self._first_in_sequence = False
                if self._handle is not None:
                    hresult = scard.SCardEndTransaction(self._handle, scard.SCARD_LEAVE_CARD)
                    if hresult != scard.SCARD_S_SUCCESS:
                        # The card left or pcscd went away: the next command finds out and reports it.
                        log.info("reader %r: SCardEndTransaction: %s", self.name, error_name(hresult))

    def close(self) -> None:
        """Release both contexts, leaving the card powered for whoever uses the reader next."""
        self._closed = True
        context = self._watch_context
        if context is not None:
            try:
                scard.SCardCancel(context)  # wakes a watcher blocked in SCardGetStatusChange
            except Exception:
                pass
        if self._watch_lock.acquire(timeout=5):
            try:
                if self._watch_context is not None:
                    _release(self._watch_context)
                    self._watch_context = None
            finally:
                self._watch_lock.release()
        with self._card_lock:
            self._drop_handle()
            if self._card_context is not None:
                _release(self._card_context)
                self._card_context = None

    def __enter__(self) -> PcscReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals (under _card_lock)

    def _check_open(self) -> None:
        if self._closed:
            raise ReaderError(f"reader {self.name!r} is closed")

    def _ensure_handle(self) -> None:
        """Connect once per inserted card; reconnect only when the watcher has reported a swap since."""
        if self._handle is not None and self._handle_generation != self._generation:
            self._drop_handle()
        if self._handle is not None:
            return
        if self._card_context is None:
            try:
                self._card_context = _establish()
            except _ServiceLost as error:
                raise ReaderGone(f"reader {self.name!r}: pcscd is not available ({error})") from None
        generation = self._generation
        hresult, handle, protocol = self._connect()
        if hresult in _SERVICE_LOST:
            # pcscd restarted since our context was made: a fresh context is all a new connection needs.
            _release(self._card_context)
            try:
                self._card_context = _establish()
            except _ServiceLost as error:
                self._card_context = None
                raise ReaderGone(f"reader {self.name!r}: pcscd is not available ({error})") from None
            hresult, handle, protocol = self._connect()
        self._raise_for(hresult, "SCardConnect")
        self._handle, self._protocol, self._handle_generation = handle, protocol, generation

    def _connect(self) -> Any:
        return self._retry_busy(
            lambda: scard.SCardConnect(self._card_context, self.name, scard.SCARD_SHARE_SHARED, _PROTOCOLS)
        )

    def _begin_transaction(self) -> None:
        for _ in range(3):
            hresult = self._retry_busy(lambda: scard.SCardBeginTransaction(self._handle))
            if hresult == scard.SCARD_W_RESET_CARD:
                self._acknowledge_reset()
                continue
            if hresult in _ABSENT and self._handle_generation != self._generation:
                self._drop_handle()  # stale handle of a swapped card the worker already knows about
                self._ensure_handle()
                continue
            self._raise_for(hresult, "SCardBeginTransaction")
            return
        raise ReaderError(f"reader {self.name!r}: the card keeps being reset by another application")

    def _transmit(self, apdu: bytes, retry_reset: bool) -> bytes:
        if self._handle is None:
            raise CardAbsent(f"no card in {self.name!r}")
        hresult, response = self._retry_busy(lambda: scard.SCardTransmit(self._handle, self._protocol, list(apdu)))
        if hresult == scard.SCARD_W_RESET_CARD:
            self._acknowledge_reset()
            if not retry_reset:
                raise CardReset(f"reader {self.name!r}: the card was reset by another application during a transaction")
            hresult, response = scard.SCardTransmit(self._handle, self._protocol, list(apdu))
        if hresult in _TRANSPORT_FAILED or (hresult == scard.SCARD_S_SUCCESS and len(response) < 2):
            # A card pulled mid-command surfaces as a transport error (or, through vpcd, as an empty
            # "success"): pcscd notices the removal only on its next presence poll, so ask it.
            if self._card_left(_REMOVAL_NOTICE):
                self._drop_handle()
                raise CardAbsent(f"the card left {self.name!r} during the command")
            if hresult == scard.SCARD_S_SUCCESS:
                raise ReaderError(f"reader {self.name!r}: SCardTransmit returned no status word")
        self._raise_for(hresult, "SCardTransmit")
        return bytes(response)

    def _card_left(self, window: float) -> bool:
        """Whether the card is gone now or leaves within `window` seconds (a removal pcscd has yet to poll)."""
        hresult, states = scard.SCardGetStatusChange(
            self._card_context, 0, [(self.name, scard.SCARD_STATE_UNAWARE, [])]
        )
        if hresult != scard.SCARD_S_SUCCESS:
            return False
        state = states[0][1]
        if not state & scard.SCARD_STATE_PRESENT:
            return True
        hresult, states = scard.SCardGetStatusChange(
            self._card_context, int(window * 1000), [(self.name, state & ~scard.SCARD_STATE_CHANGED, [])]
        )
        if hresult != scard.SCARD_S_SUCCESS:
            return False
        new_state = states[0][1]
        return not new_state & scard.SCARD_STATE_PRESENT or (new_state >> 16) != (state >> 16)

    def _acknowledge_reset(self) -> None:
        log.warning("reader %r: the card was reset by another application; reconnecting", self.name)
        hresult, protocol = scard.SCardReconnect(
            self._handle, scard.SCARD_SHARE_SHARED, _PROTOCOLS, scard.SCARD_LEAVE_CARD
        )
        self._raise_for(hresult, "SCardReconnect")
        self._protocol = protocol

    def _retry_busy(self, call: Any) -> Any:
        """Another client's transaction or exclusive connection is a wait, not an error (up to busy_timeout)."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            result = call()
            hresult = result if isinstance(result, int) else result[0]
            if hresult != scard.SCARD_E_SHARING_VIOLATION or time.monotonic() >= deadline:
                return result
            time.sleep(_BUSY_RETRY)

    def _raise_for(self, hresult: int, call: str) -> None:
        if hresult == scard.SCARD_S_SUCCESS:
            return
        name = error_name(hresult)
        if hresult in _ABSENT:
            self._drop_handle()
            raise CardAbsent(f"no card in {self.name!r} ({name})")
        if hresult in _READER_GONE:
            self._drop_handle()
            raise ReaderGone(f"reader {self.name!r} is gone ({name})")
        if hresult in _SERVICE_LOST:
            # pcscd stopped or restarted: the handle and context are dead and the card was power-cycled.
            self._handle = None
            if self._card_context is not None:
                _release(self._card_context)
                self._card_context = None
            raise ReaderGone(f"reader {self.name!r}: pcscd connection lost ({name})")
        raise ReaderError(f"reader {self.name!r}: {call} failed ({name})")

    def _drop_handle(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
            except Exception:
                pass
