"""Small statistics: percentiles of samples, medians of runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["median", "percentile", "percentiles_ms"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linear interpolation."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def percentiles_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9, mean and max of latencies given in seconds, in milliseconds."""
    values = sorted(s * 1000.0 for s in samples_s)
    if not values:
        return {}
    return {
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "p999": percentile(values, 99.9),
        "mean": statistics.fmean(values),
        "max": values[-1],
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
