"""Reader workers: one OS process per reader, owning its hardware."""
