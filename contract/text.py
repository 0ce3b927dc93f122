"""The one rule for text from outside that the console keeps or logs: no control characters.

C0, DEL and C1 are what could forge a log line (a newline, a carriage return, a terminal escape). Nothing else
is refused: a hospital's or reader's name may be in any script, and Python's `isprintable()` (which also
refuses unassigned code points and format characters) cannot be said in an OpenAPI pattern, so the API's
check, its schema, the broker's and the bench's would drift apart. The regex reads the same in Python and in
JSON Schema.
"""

from __future__ import annotations

import re
from typing import Final

CONTROL_CHARACTERS: Final = re.compile(r"[\u0000-\u001f\u007f-\u009f]")

MAX_KEPT_TEXT: Final = 256
"""Text a request chose that the log keeps (a path, an `Origin` as a caller) is cut to this many characters
first (api/refusals.py `clean`): a hostile page cannot grow a row past it."""
