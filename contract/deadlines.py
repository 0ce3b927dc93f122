"""How long things may take, written once: the broker's deadline for a card step, the holder's time at an NHI
reader's keypad, and how long the API waits for the broker's answer to a call (always longer than every deadline
the broker applies inside it, so that the API never gives up on a call the broker is still running)."""

from __future__ import annotations

from typing import Final

CARD_STEP_SECONDS: Final = 10.0
"""One step of a flow at a reader (an APDU sequence run by the worker) before its caller gets an error."""

KEYPAD_SECONDS: Final = 30
"""How long an NHI reader waits for the holder to type a PIN on its keypad (sent to the reader with the command)."""

KEYPAD_STEP_SECONDS: Final = KEYPAD_SECONDS + 10.0
"""The broker's deadline for a keypad step: the holder's time plus the reader's own round trips."""

REQUEST_SECONDS: Final = 5.0
"""The API's wait for a call that the broker answers itself (Status, settings, the record)."""

FLOW_SECONDS: Final = 60.0
"""The API's wait for a call that may take several DC round trips and card steps (each bounded on its own)."""

KEYPAD_FLOW_SECONDS: Final = FLOW_SECONDS + KEYPAD_STEP_SECONDS
"""The API's wait for a PIN call on an NHI reader: the flow's steps and the keypad's, so that it never answers
1099 while the holder types."""
