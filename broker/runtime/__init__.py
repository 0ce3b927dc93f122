"""The broker process's runtime: the ZeroMQ loop, the reader queues, the worker pool and liveness, the clock.
Thin I/O around the application core (`broker.core`)."""
