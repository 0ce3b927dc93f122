"""gunicorn settings for the console's API, taken from the settings file `serve` wrote (contract/settings.py).

gthread workers: keep-alive connections (a HIS keeps one open), and a request
waiting on a card or a keypad PIN occupies a thread, not the whole process, so
gunicorn's worker timeout (a heartbeat of the worker's main loop) never kills it.
Guarded (deploy/guarded_worker.py): a connection holds no thread until its request
head is complete, so slow or silent clients cannot take the threads (issue 20).
"""

import os
from pathlib import Path

from contract.settings import SETTINGS_ENV, Settings

_settings = Settings.read(Path(os.environ[SETTINGS_ENV]))
"""The file the supervisor names in the API's one environment variable; the app (api/app.py) reads it too."""

bind = list(_settings.locations.binds)
certfile = str(_settings.locations.tls_certificate)
keyfile = str(_settings.locations.tls_key)
worker_class = "deploy.guarded_worker.GuardedThreadWorker"
"""gthread, with the TLS handshake and the request head read on the worker's poller, each with a deadline."""
http_protocols = "h1"
"""HTTP/1.1 only, so ALPN offers no h2: the guarded worker reads HTTP/1 heads (it refuses to start with h2)."""
workers = _settings.api.processes
threads = _settings.api.threads
"""Up to `max_streams` of them may hold live event streams; the rest serve calls."""
keepalive = 75
timeout = _settings.api.gunicorn_timeout
"""Seconds without a heartbeat of a worker's main loop before the arbiter kills it; a request waiting on a
keypad (up to 120 s) waits in a thread and does not stop the heartbeat. Settable (`serve --gunicorn-timeout`)
so that a test can make it short and show exactly that (tests/integration/test_long_keypad_wait.py)."""
graceful_timeout = 5
preload_app = False  # each process makes its own ZeroMQ context after the fork
proc_name = "nhi-console-api"
# gunicorn 24+ opens a control socket in ~/.gunicorn by default; two consoles (a test
# bench beside a real one) would fight over it, and nothing here uses it.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = os.environ.get("NHI_CONSOLE_LOG_LEVEL", "info")
"""The operator's logging knob (the systemd unit sets it), read by every process from the environment it inherits."""


def post_worker_init(worker: object) -> None:
    """A graceful stop (SIGTERM) also ends this process's live event streams at once: otherwise each would
    hold the stop up for `graceful_timeout`. gunicorn installed its handler before this hook; ours wraps it.

    And the app, loaded by now, is frozen out of the cyclic collector's full passes, each of which would walk
    its tens of thousands of objects (~15 ms on 2 cores) in the middle of some request."""
    import gc
    import signal

    from api.resources.events import STOPPING

    stop = worker.handle_exit  # type: ignore[attr-defined]  # gunicorn passes its Worker, typed `object` here to keep gunicorn's import out of the config

    def handle_exit(signum: int, frame: object) -> None:
        STOPPING.set()
        stop(signum, frame)

    signal.signal(signal.SIGTERM, handle_exit)
    gc.freeze()
