"""Streams of HTTPS calls to a running console, each call sent exactly once, every outcome kept.

A crash test needs to know, for every call, whether the console answered it (and then it must be in the
record, with its effect) or not (then its outcome is unknown, and either is allowed). `RunningConsole.request`
resends once on a broken connection, which is right for a test that wants an answer and wrong here: a
resend is a second call. So this client never resends.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class CallOutcome:
    call: Call
    status: int | None
    """The HTTP status; None when no HTTP answer came (the connection broke or timed out)."""
    status_code: int | None
    """The answer's `statusCode`, when it had one."""
    request_id: str | None
    """`X-Request-Id`: the call record's uuid."""
    message: str | None = None
    """The answer's `message`, when it had one."""

    @property
    def answered(self) -> bool:
        """The broker answered it (HTTP 200): the call is in the record and its effect in the log.

        A 503 is the API saying the broker did not answer: nothing is recorded, and the call may or may not
        have run (when the broker died holding it).
        """
        return self.status == 200


class OneShotClient:
    """One kept-alive HTTPS connection; each call is sent once, whatever happens to it."""

    def __init__(self, port: int, ca_file: Path, timeout: float) -> None:
        self._port = port
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._timeout = timeout
        self._connection: http.client.HTTPSConnection | None = None

    def send(self, call: Call) -> CallOutcome:
        payload = None if call.body is None else json.dumps(call.body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        if self._connection is None:
            self._connection = http.client.HTTPSConnection(
                "localhost", self._port, context=self._context, timeout=self._timeout
            )
        try:
            self._connection.request(call.method, call.path, body=payload, headers=headers)
            response = self._connection.getresponse()
            raw = response.read()
        except (http.client.HTTPException, OSError):
            self.close()
            return CallOutcome(call, None, None, None)
        body = json.loads(raw) if raw else None
        fields = body if isinstance(body, dict) else {}
        return CallOutcome(
            call, response.status, fields.get("statusCode"), response.getheader("X-Request-Id"), fields.get("message")
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class CallStream:
    """Sends `plan(0)`, `plan(1)`, ... one at a time on its own thread and connection until `stop()`.

    `pause()` returns once no call is in flight and none will start until `resume()`: a snapshot taken
    then cannot be overtaken by this stream's calls.
    """

    def __init__(self, name: str, client: OneShotClient, plan: Callable[[int], Call]) -> None:
        self._client = client
        self._plan = plan
        self._condition = threading.Condition()
        self._paused = False
        self._stopped = False
        self._in_flight = False
        self._outcomes: list[CallOutcome] = []
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> CallStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        number = 0
        try:
            while True:
                with self._condition:
                    self._condition.wait_for(lambda: self._stopped or not self._paused)
                    if self._stopped:
                        return
                    self._in_flight = True
                outcome = self._client.send(self._plan(number))
                number += 1
                with self._condition:
                    self._outcomes.append(outcome)
                    self._in_flight = False
                    self._condition.notify_all()
        except BaseException as error:  # reported by the test through `failure`: a dead stream must fail it
            self.failure = error
            with self._condition:
                self._in_flight = False
                self._condition.notify_all()
        finally:
            self._client.close()

    def pause(self, timeout: float) -> None:
        with self._condition:
            self._paused = True
            if not self._condition.wait_for(lambda: not self._in_flight, timeout):
                raise TimeoutError(f"{self._thread.name}: its call still in flight after {timeout}s")

    def resume(self) -> None:
        with self._condition:
            self._paused = False
            self._condition.notify_all()

    def stop(self, timeout: float) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join(timeout)

    def outcomes(self) -> list[CallOutcome]:
        with self._condition:
            return list(self._outcomes)

    def answered(self) -> int:
        with self._condition:
            return sum(outcome.answered for outcome in self._outcomes)
