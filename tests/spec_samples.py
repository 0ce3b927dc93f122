"""Literal answers the contract fixes, written out once so that tests compare against the spec, not the code."""

from typing import Any

EMPTY_STATUS: dict[str, Any] = {
    "hc": {"status": 0, "type": 0, "expireTime": None, "hasPin": None, "verifiedPin": None},
    "hpc": {"status": 0, "type": 0, "expireTime": None},
    "initialized": False,
    "name": None,
    "readerName": None,
    "sam": {"status": 0, "type": 0, "expireTime": None},
}
"""`GET /api/common/v1/Status`'s `status` while nothing is initialized (contract.md, Field formats)."""
