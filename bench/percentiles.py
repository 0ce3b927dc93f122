"""Nearest-rank percentiles for the benchmarks' latency samples."""

from __future__ import annotations


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
