"""The event store and the API call record: storage and the audit surface.

Imports nothing from the rest of the project: payloads cross this boundary as
bytes, so the store never needs to know what an event means.
"""

from eventlog.store import CallRecord, EventStore, StoredEvent, StoreMark, StoreWriteError
from eventlog.timestamps import format_record_timestamp

__all__ = ["CallRecord", "EventStore", "StoreMark", "StoreWriteError", "StoredEvent", "format_record_timestamp"]
