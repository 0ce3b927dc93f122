"""The CORS allow-list's entries: host names, as the spec's `GET /api/settings/v1/Cors` lists them. Pure.

An entry is a DNS host name (letters, digits, hyphens, dots) or an IP address literal, compared without regard to
case. Ports and schemes are not part of it: the spec's list is `localhost`, `www.nhi.gov.tw`.
"""

from __future__ import annotations

import ipaddress
import re

DEFAULT_CORS_HOSTS: tuple[str, ...] = ("localhost", "www.nhi.gov.tw")
"""A fresh installation's list: the spec's own example (a local page, and the NHI's site)."""

MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class NotAHostName(ValueError):
    """The text is not a host name or an IP address; the message says why, not what was sent."""


def normalize_host(text: str) -> str:
    """The list's form of a host name: lower case, no trailing dot, IPv6 without brackets."""
    host = text.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or len(host) > MAX_HOST_LENGTH:
        raise NotAHostName(f"a host name is 1 to {MAX_HOST_LENGTH} characters")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not all(_LABEL.match(label) for label in host.split(".")):
        raise NotAHostName("a host name is letters, digits and hyphens, in labels separated by dots")
    return host
