"""Installation, service and local-TLS plumbing for the nhi-console."""
