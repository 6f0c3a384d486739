"""Paired timing comparisons: the ratio of two measurements taken side by side, summarised robustly.

On a shared machine the load drifts; two runs taken back to back see nearly the same load, two runs
minutes apart do not. So a benchmark interleaves short blocks (A, B, A, B, ...), forms the ratio
of each adjacent pair, and reports the median ratio with its spread (interquartile range and
min-max): one block that a burst of load hit moves the median little and shows up in the spread.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class RatioSummary:
    """Median, quartiles (``q1``, ``q3``; numpy's default "linear" percentiles) and extremes of
    ``n`` paired ratios."""

    median: float
    q1: float
    q3: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return (f"{self.median:.3f} (IQR {self.q1:.3f}-{self.q3:.3f}, min-max {self.low:.3f}-{self.high:.3f}, "
                f"{self.n} pair{'s' if self.n != 1 else ''})")


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> RatioSummary:
    """Summarise ``numerators[i] / denominators[i]`` over the pairs ``i`` (e.g. trainer steps/s of
    block ``i`` over bare-loop steps/s of the block beside it)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"paired_ratios: {len(numerators)} numerators but {len(denominators)} denominators; "
                         "expected one of each per pair")
    if not numerators:
        raise ValueError("paired_ratios: no pairs; expected at least one")
    bad = [(i, x) for i, x in enumerate([*numerators, *denominators]) if not (math.isfinite(x) and x > 0)]
    if bad:
        raise ValueError(f"paired_ratios: every value must be finite and > 0; got {bad[0][1]!r} "
                         f"(value {bad[0][0]} of numerators + denominators)")
    ratios = [a / b for a, b in zip(numerators, denominators)]
    if len(ratios) == 1:
        q1 = q3 = ratios[0]
    else:
        q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return RatioSummary(statistics.median(ratios), q1, q3, min(ratios), max(ratios), len(ratios))
