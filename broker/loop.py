"""The broker process: two ROUTER sockets, one loop, group commit.

Each turn of the loop takes every message already waiting (up to a batch
limit), runs them through the core, commits the store once, and only then sends
the replies.  One fsync thus covers a whole batch, and no reply acknowledges a
call record that a crash could still lose.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import zmq

from broker.clock import Clock, SystemClock
from broker.core import ConsoleCore
from broker.liveness import WorkerRegistry
from broker.protocol import (
    Disconnect,
    Heartbeat,
    ProtocolError,
    Reply,
    Request,
    WorkerStatus,
    build,
    parse,
)
from broker.worker_pool import ReaderSpec, WorkerPool
from eventlog.sqlite_store import SqliteEventStore

log = logging.getLogger(__name__)

BATCH_LIMIT = 512
"""Messages taken from one socket per turn: bounds the latency one busy client can add to others."""


@dataclass
class BrokerConfig:
    api_endpoint: str
    worker_endpoint: str
    database: Path
    durability: str = "full"
    heartbeat_interval: float = 1.0
    readers: list[ReaderSpec] = field(default_factory=list)
    adopt_grace: float = 0.0
    """Seconds to wait for workers of a previous broker to re-register before starting new ones."""


class Broker:
    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock = clock or SystemClock()
        self._store = SqliteEventStore(config.database, durability=config.durability)
        self.core = ConsoleCore(self._store, self._clock)
        self._registry = WorkerRegistry(config.heartbeat_interval)
        now = self._clock.monotonic()
        self._pool = WorkerPool(config.worker_endpoint, self._registry, adopt_until=now + config.adopt_grace)
        self._desired = {spec.name: spec for spec in config.readers}
        self._running = True
        self._context = zmq.Context()
        self._frontend = self._context.socket(zmq.ROUTER)
        self._frontend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._frontend.setsockopt(zmq.LINGER, 0)
        self._backend = self._context.socket(zmq.ROUTER)
        self._backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._backend.setsockopt(zmq.LINGER, 0)

    def stop(self, *_: object) -> None:
        self._running = False

    def run(self) -> None:
        self._frontend.bind(self._config.api_endpoint)
        self._backend.bind(self._config.worker_endpoint)
        log.info("broker listening on %s and %s", self._config.api_endpoint, self._config.worker_endpoint)
        poller = zmq.Poller()
        poller.register(self._frontend, zmq.POLLIN)
        poller.register(self._backend, zmq.POLLIN)
        interval = self._config.heartbeat_interval
        next_heartbeat = 0.0
        next_reconcile = 0.0
        try:
            while self._running:
                now = self._clock.monotonic()
                wait = max(0.0, min(next_heartbeat, next_reconcile) - now)
                ready = dict(poller.poll(timeout=wait * 1000))
                replies: list[tuple[bytes, Reply]] = []
                if self._frontend in ready:
                    replies.extend(self._take_requests())
                if self._backend in ready:
                    self._take_worker_messages()
                now = self._clock.monotonic()
                if now >= next_reconcile:
                    self._reconcile(now)
                    next_reconcile = now + min(0.1, interval / 4)
                if now >= next_heartbeat:
                    self._send_heartbeats()
                    next_heartbeat = now + interval
                self.core.commit()
                for identity, reply in replies:
                    self._send(self._frontend, identity, build(reply))
        finally:
            self._shutdown()

    def _take_requests(self) -> list[tuple[bytes, Reply]]:
        replies = []
        for _ in range(BATCH_LIMIT):
            try:
                identity, *frames = self._frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                message = parse(frames)
            except ProtocolError as error:
                log.warning("dropped a bad frame from an API client: %s", error)
                continue
            if not isinstance(message, Request):
                log.warning("dropped a %s from an API client", type(message).__name__)
                continue
            replies.append((identity, self.core.handle(message)))
        return replies

    def _take_worker_messages(self) -> None:
        for _ in range(BATCH_LIMIT):
            try:
                identity, *frames = self._backend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                message = parse(frames)
            except ProtocolError as error:
                log.warning("dropped a bad frame from a worker: %s", error)
                continue
            now = self._clock.monotonic()
            if isinstance(message, WorkerStatus):
                if message.reader not in self._desired:
                    self._send(self._backend, identity, build(Disconnect(reason="reader not wanted")))
                    continue
                replaced = self._registry.seen(identity, message.reader, message.pid, now)
                if replaced is not None:
                    log.warning("reader %r: worker pid %d replaced by pid %d", message.reader, replaced.pid, message.pid)
                    self._send(self._backend, replaced.identity, build(Disconnect(reason="replaced")))
                self.core.worker_reported(message)
            elif self._registry.touch(identity, now) is None:
                log.warning("dropped a %s from an unregistered worker", type(message).__name__)

    def _reconcile(self, now: float) -> None:
        lost, unwanted = self._pool.reconcile(self._desired, now)
        for reader, reason in lost:
            log.warning("reader %r: %s", reader, reason)
            self.core.worker_lost(reader, reason)
        for reader in unwanted:
            self.core.reader_detached(reader, "reader no longer present")

    def _send_heartbeats(self) -> None:
        frames = build(Heartbeat())
        for connection in self._registry.connections():
            self._send(self._backend, connection.identity, frames)

    def _send(self, socket: zmq.Socket, identity: bytes, frames: list[bytes]) -> None:
        try:
            socket.send_multipart([identity, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as error:
            # The peer is gone (EHOSTUNREACH under ROUTER_MANDATORY) or its queue is full:
            # its request timed out on its side already, so there is no one left to tell.
            log.warning("could not deliver to a peer: %s", error)

    def _shutdown(self) -> None:
        log.info("broker stopping")
        for connection in self._registry.connections():
            self._send(self._backend, connection.identity, build(Disconnect(reason="console stopping")))
        self._pool.stop_all()
        self.core.commit()
        self._store.close()
        self._frontend.close(linger=0)
        self._backend.close(linger=0)
        self._context.term()


def install_signal_handlers(broker: Broker) -> None:
    def _stop(signum: int, frame: FrameType | None) -> None:
        broker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
