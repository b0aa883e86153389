"""Confidence intervals of an accuracy measured on a number of images."""

from __future__ import annotations

import math

# Written out (ten lines) rather than scipy's binomtest(k, n).proportion_ci("wilson"), which
# takes a whole count of correct images: a module's own accuracy may be a mean of batch means.
Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def wilson_interval(p: float, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion `p` observed on `n` samples (95% by default)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a proportion must be in [0, 1], got {p}")
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))
