"""The guarded gunicorn worker's configuration check (deploy/guarded_worker.py): HTTP/1.1 only."""

from __future__ import annotations

import logging

import pytest
from gunicorn.config import Config
from gunicorn.errors import ConfigError

from deploy.guarded_worker import GuardedThreadWorker


def config(**settings: str) -> Config:
    cfg = Config()
    cfg.set("threads", 24)
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


def test_http_1_is_accepted() -> None:
    GuardedThreadWorker.check_config(config(http_protocols="h1"), logging.getLogger("test"))


@pytest.mark.parametrize("settings", [{"http_protocols": "h2,h1"}, {"http2_cleartext": "upgrade"}])
def test_anything_that_could_bring_http_2_is_refused(settings: dict[str, str]) -> None:
    """The guard reads HTTP/1 heads: an h2 connection handed to it would be handed to an HTTP/1 parser."""
    with pytest.raises(ConfigError, match=r"HTTP/1\.1 only"):
        GuardedThreadWorker.check_config(config(**settings), logging.getLogger("test"))
