"""Process exit statuses the console's processes agree on (the supervisor reads what the broker exits with).

Why a shared constant: a broker that cannot write its data dir would fail the same way at every restart, so
the supervisor must tell that exit from a crash and stop instead of restarting it forever (a crash loop that
fills the journal and hides the one line that says what is wrong).
"""

from __future__ import annotations

from typing import Final

DATA_DIR_UNWRITABLE: Final = 73
"""sysexits.h's EX_CANTCREAT: the data dir (or the event log in it) cannot be written; not worth a restart."""

EXPOSURE_NOT_CONFIRMED: Final = 78
"""sysexits.h's EX_CONFIG: `serve --host` names an address other machines can reach, without the flag that says so
(deploy/exposure.py); a restart would refuse the same way."""

AGENT_REFUSED: Final = 77
"""sysexits.h's EX_NOPERM: a reader agent's worker whose key the console refused (not enrolled, or removed). ZeroMQ
does not retry a connection refused in its handshake, so the worker exits and its agent starts it again, with
backoff: an enrolment made meanwhile lets the next one in."""
