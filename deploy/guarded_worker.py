"""The API's gunicorn worker: gthread, except that a connection holds no thread until its request head is complete.

Why (issue 20, "hostile callers"): gunicorn's gthread worker submits each accepted connection to its thread pool,
where the thread waits up to 5 s for a first byte, then does the TLS handshake on a blocking socket with no
timeout, then reads the head blocking. About 60 connections sending one byte each held all 2 x 24 threads of the
API, and `GET /api/common/v1/Status` stopped answering for everyone.

How: accepted sockets stay non-blocking on the worker's poller. The TLS handshake is stepped there (wrapped with
`do_handshake_on_connect=False`; `SSLWantReadError`/`SSLWantWriteError` say which readiness to wait for), then the
request head is read there until its blank line, and only then is the connection given to the thread pool, with
the bytes read handed back to gunicorn's parser (`parser.unreader.unread`). A kept-alive connection that becomes
readable, or whose next request was partly read ahead into the parser's buffer, goes through the same head read.
Each stage has a deadline (deploy/head_guard.py: 5 s for the handshake from accept, 10 s for a head from its first
byte, the keep-alive timeout for a connection that has sent nothing yet) after which the connection is closed
without a thread ever having waited on it. A connection closed after its answer (`Connection: close`, an error)
lingers on the poller too: gunicorn's `close_graceful` waits up to 2 s for the client's close blocking, on the
main loop, which a client that never closes turned into a 2 s stall of every connection of the process.

HTTP/1.1 only: h2 must not be offered by ALPN and cleartext h2 must be off (`check_config` refuses otherwise);
deploy/gunicorn_conf.py says `http_protocols = "h1"`.

What is not guarded: once the head is complete, the thread reads the body and writes the answer on a blocking
socket with no timeout, as gthread does. A client that sends a head announcing a body and never sends it holds its
thread until it closes, so some 48 of them (the threads of both processes) still stop the API; so would clients
not reading large answers. Reading small `Content-Length` bodies here too, before the hand-over, would close that.

Written against gunicorn 27 (pinned `gunicorn>=27,<28` in pyproject.toml): it relies on gthread's internals, which
are not an API and change between majors: `ThreadWorker.enqueue_req` as the one door to the thread pool (called by
`accept`, `on_client_socket_readable` and `finish_request`), `accept` itself (replaced, to make a `GuardedConn`),
`finish_request` counting a connection out of `nr_conns` before `conn.close(graceful=True)`, `murder_pending` and
`murder_keepalived` called each turn of the loop, `_cap_keepalive` at a graceful stop (with `STOP_KEEPALIVE_LINGER`),
`nr_conns`, `poller`, `handle` skipping its own wait and TLS wrap for a `TConn` already `initialized` and
`data_ready`, `TConn.parser`; `gunicorn.sock.ssl_context`; the parser's `unreader.unread` and `take_buffered`.
A new major needs this module read against its gthread.py again.
"""

from __future__ import annotations

import errno
import selectors
import socket
import ssl
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.errors import ConfigError
from gunicorn.workers.gthread import TConn, ThreadWorker

from deploy.head_guard import HEAD_SECONDS, Deadlines, HeadState, PendingHead, Stage

READ_CHUNK = 16 * 1024
"""One non-blocking read of a head: a TLS record's worth, so that a head usually takes one read."""

TOO_LARGE_ANSWER = b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
"""Sent, if the socket takes it at once, to a head over `MAX_HEAD_BYTES` before it is closed."""


class GuardedConn(TConn):
    """gunicorn's connection, whose graceful close (after an answer that closes it) is done by the worker's poller
    instead of blocking the main loop: `finish_request` calls it there."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, linger: Callable[[TConn], None]):
        super().__init__(cfg, sock, client, server)
        self._linger = linger

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self._linger(self)
        else:
            super().close()


class _Guarded:
    """A connection on the poller with no thread: its progress (pure, deploy/head_guard.py) and what the poller
    watches it for."""

    __slots__ = ("conn", "counted", "events", "open", "pending")

    def __init__(self, conn: TConn, pending: PendingHead, counted: bool = True) -> None:
        self.conn = conn
        self.pending = pending
        self.counted = counted
        """Whether it is one of gthread's `nr_conns` (a lingering one was counted out by `finish_request`)."""
        self.events = 0
        """The poller's events this socket is registered for; 0: not registered."""
        self.open = True
        """False once closed or handed over: a readiness reported in the same poll must find nothing to do."""


class GuardedThreadWorker(ThreadWorker):
    """gthread with a guard in front of its thread pool (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guarded: Deadlines[_Guarded] = Deadlines()
        self._tls: ssl.SSLContext | None = None

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Only HTTP/1.x is read by the guard: an h2 connection would be handed to an HTTP/1 parser."""
        super().check_config(cfg, log)
        if "h2" in cfg.http_protocols or cfg.http2_cleartext != "off" or getattr(cfg, "protocol", "http") != "http":
            raise ConfigError(
                f"{cls.__name__} serves HTTP/1.1 only: http_protocols must not include h2 (got {cfg.http_protocols}), "
                f"http2_cleartext must be off (got {cfg.http2_cleartext}) and protocol http"
            )

    def run(self) -> None:
        # One TLS context for the process, made after gunicorn dropped privileges and before any connection. gthread
        # made one a connection (reading the key file each time), in a thread; here every handshake is stepped in
        # the main loop, so a fresh context each would be loop time. A renewed certificate is served after a
        # restart, as `nhi-console cert --renew` says.
        if self.cfg.is_ssl:
            self._tls = gunicorn_sock.ssl_context(self.cfg)
        super().run()

    # -- gunicorn's doors, redirected through the guard

    def accept(self, listener: socket.socket) -> None:
        """gthread's accept, with a `GuardedConn`."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = GuardedConn(self.cfg, client_sock, client_addr, listener.getsockname(), self._linger)
        self.enqueue_req(conn)

    def enqueue_req(self, conn: TConn) -> None:
        """gthread's one door to the thread pool (a new connection, a kept-alive one become readable, a next request
        read ahead into the parser's buffer): here a connection waits on the poller until its head is complete."""
        now = time.monotonic()
        try:
            if not conn.initialized:
                conn.initialized = True
                conn.data_ready = True
                if self._tls is not None:
                    conn.sock = self._tls.wrap_socket(
                        conn.sock,
                        server_side=True,
                        do_handshake_on_connect=False,
                        suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                    )
                    pending = PendingHead.handshaking(now)
                else:
                    pending = PendingHead.idle(now, self._idle_seconds())
                conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            else:
                pending = PendingHead.reading(now, conn.parser.unreader.take_buffered())
        except Exception as error:  # the peer gone before the wrap (ENOTCONN), or anything else: this one only
            self.log.debug("guarded worker: closing a connection at its start: %r", error)
            self.nr_conns -= 1
            conn.close()
            return
        guarded = _Guarded(conn, pending)
        self._guarded.set(guarded, pending.deadline)
        self._advance(guarded, readable=False)

    def murder_pending(self) -> None:
        """gthread's per-turn sweep of deferred connections, and ours: every guarded connection past its deadline."""
        super().murder_pending()
        for guarded in self._guarded.due(time.monotonic()):
            self.log.debug("guarded worker: %s deadline passed, closing", guarded.pending.stage.value)
            self._close(guarded)

    def murder_keepalived(self, force: bool = False) -> None:
        """At the very end of a stop (`force`), the guarded connections go with the kept-alive ones."""
        super().murder_keepalived(force)
        if force:
            for guarded in self._guarded:
                self._close(guarded)

    def _cap_keepalive(self, deadline: float) -> None:
        """A stopping worker keeps a kept-alive connection `STOP_KEEPALIVE_LINGER` at most; a guarded one too."""
        super()._cap_keepalive(deadline)
        self._guarded.cap(deadline)

    # -- the guard

    def _idle_seconds(self) -> float:
        """How long a connection ready for a request may send nothing: gunicorn's keep-alive timeout."""
        keepalive: float = self.cfg.keepalive
        return keepalive if keepalive > 0 else HEAD_SECONDS

    def _on_ready(self, guarded: _Guarded, _fileobj: object) -> None:
        """The poller's callback for a guarded socket."""
        if guarded.open:
            self._advance(guarded, readable=True)

    def _advance(self, guarded: _Guarded, readable: bool) -> None:
        """As far as the socket allows without blocking: handshake, head, hand-over; or the drain of a linger."""
        pending = guarded.pending
        sock = guarded.conn.sock
        now = time.monotonic()
        try:
            if pending.stage is Stage.LINGER:
                self._drain(guarded)
                return
            if pending.stage is Stage.HANDSHAKE:
                try:
                    sock.do_handshake()
                except ssl.SSLWantReadError:
                    self._watch(guarded, selectors.EVENT_READ)
                    return
                except ssl.SSLWantWriteError:
                    self._watch(guarded, selectors.EVENT_WRITE)
                    return
                pending.shook_hands(now, self._idle_seconds())
            elif readable:
                pending.stirred(now)
            state = pending.state()
            while state is HeadState.INCOMPLETE:
                try:
                    data = sock.recv(READ_CHUNK)
                except (ssl.SSLWantReadError, BlockingIOError):
                    self._watch(guarded, selectors.EVENT_READ)
                    return
                except ssl.SSLWantWriteError:
                    self._watch(guarded, selectors.EVENT_WRITE)
                    return
                if not data:
                    self._close(guarded)  # the client closed (perhaps a kept-alive connection it is done with)
                    return
                state = pending.received(data, now)
            if state is HeadState.COMPLETE:
                self._hand_over(guarded)
            else:
                self._refuse(guarded)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError: a bad ClientHello, a reset
            self.log.debug("guarded worker: closing a connection in its %s: %r", pending.stage.value, error)
            self._close(guarded)
        except Exception:
            self.log.exception("guarded worker: closing a connection in its %s", pending.stage.value)
            self._close(guarded)
        finally:
            if guarded.open:
                self._guarded.set(guarded, pending.deadline)

    def _hand_over(self, guarded: _Guarded) -> None:
        """The head is complete: off the poller, its bytes back to gunicorn's parser, into the thread pool."""
        self._forget(guarded)
        conn = guarded.conn
        conn.parser.unreader.unread(bytes(guarded.pending.buffer))
        try:
            super().enqueue_req(conn)
        except RuntimeError:  # the pool is shut down: the worker is past its stop
            self.nr_conns -= 1
            conn.close()

    def _refuse(self, guarded: _Guarded) -> None:
        """A head over `MAX_HEAD_BYTES`: a 431 if the socket takes it at once, then closed as after any closing
        answer (lingering: closed at once, the rest of the head unread would reset the connection, 431 and all)."""
        self.log.debug("guarded worker: a request head over %d bytes, refused", guarded.pending.limit)
        try:
            guarded.conn.sock.send(TOO_LARGE_ANSWER)
        except (OSError, ValueError):
            pass
        self._forget(guarded)
        self.nr_conns -= 1  # as `finish_request` counts a connection out before its graceful close
        self._linger(guarded.conn)

    def _linger(self, conn: TConn) -> None:
        """`conn.close(graceful=True)`, from `finish_request` on the main thread (it already counted the connection
        out of `nr_conns`): half-close, then drain on the poller until the client closes or `LINGER_SECONDS`."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)  # an SSLSocket drops its TLS object here: the drain reads raw bytes
            conn.sock.setblocking(False)
        except (OSError, ValueError):
            conn.sock.close()
            return
        guarded = _Guarded(conn, PendingHead.lingering(time.monotonic()), counted=False)
        self._guarded.set(guarded, guarded.pending.deadline)
        self._advance(guarded, readable=False)  # whatever happens, closed here or on the poller, never raised

    def _drain(self, guarded: _Guarded) -> None:
        """Read and drop what the client still sends, until it closes (or `LINGER_MAX_BYTES`), then close."""
        sock = guarded.conn.sock
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                self._watch(guarded, selectors.EVENT_READ)
                return
            except (OSError, ValueError):
                data = b""
            if not guarded.pending.drained(len(data)):
                self._close(guarded)
                return

    def _watch(self, guarded: _Guarded, events: int) -> None:
        """Have the poller call back when the socket is ready for `events` (register, or change what it waits for)."""
        if guarded.events == events:
            return
        callback = partial(self._on_ready, guarded)
        if guarded.events:
            self.poller.modify(guarded.conn.sock, events, callback)
        else:
            self.poller.register(guarded.conn.sock, events, callback)
        guarded.events = events

    def _forget(self, guarded: _Guarded) -> None:
        """Off the poller and out of the deadlines: handed over or closed."""
        guarded.open = False
        self._guarded.discard(guarded)
        if guarded.events:
            try:
                self.poller.unregister(guarded.conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            guarded.events = 0

    def _close(self, guarded: _Guarded) -> None:
        if not guarded.open:
            return
        self._forget(guarded)
        if guarded.counted:
            self.nr_conns -= 1
        guarded.conn.close()


__all__ = ["GuardedConn", "GuardedThreadWorker"]
