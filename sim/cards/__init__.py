"""Virtual cards of the bench: ISO 7816 APDUs in, responses out, independent of how they are reached."""
