"""The HTTP face of the console: a thin Falcon app that validates, asks the broker, renders."""
