"""Falcon resources, one module per section of the API reference."""
