"""The broker: the single writer of the event log, the owner of the console's state,
the router between the API processes and the reader workers, and their supervisor."""
