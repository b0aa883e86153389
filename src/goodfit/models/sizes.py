"""The one check on the layer sizes a `model` config gives (widths, filters, units)."""

from __future__ import annotations

from collections.abc import Sequence


def check_sizes(key: str, sizes: Sequence[int], at_least: int = 0) -> list[int]:
    """`sizes` as a list, or a ValueError naming `model.<key>`: each must be an integer >= 1
    (torch builds a layer of 0 units without a word, and the run then learns nothing), and
    there must be at least `at_least` of them."""
    values = list(sizes) if isinstance(sizes, Sequence) and not isinstance(sizes, str) else None
    if values is None or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                                 for s in values):  # fmt: skip
        raise ValueError(f"model.{key}={sizes!r}: must be a list of integers >= 1")
    if len(values) < at_least:
        raise ValueError(f"model.{key}={values}: needs at least {at_least} size(s)")
    return values
