"""benchmarks/paired.py: median and spread of paired ratios (numpy percentiles as the oracle)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_paired", Path(__file__).resolve().parents[2] / "benchmarks" / "paired.py")
paired = sys.modules.setdefault("bench_paired", importlib.util.module_from_spec(_spec))  # dataclasses need it there
_spec.loader.exec_module(paired)


def test_ratios_are_paired_not_pooled():
    # pairs (trainer, bare): the load doubles for the last two pairs, the ratio stays 0.9
    trainer = [9.0, 9.0, 4.5, 4.5]
    bare = [10.0, 10.0, 5.0, 5.0]
    s = paired.paired_ratios(trainer, bare)
    assert s.median == pytest.approx(0.9) and s.q1 == pytest.approx(0.9) and s.q3 == pytest.approx(0.9)
    assert (s.low, s.high, s.n) == (pytest.approx(0.9), pytest.approx(0.9), 4)


def test_median_and_spread_match_numpy():
    rng = np.random.default_rng(0)
    num, den = rng.uniform(1, 20, 17), rng.uniform(1, 20, 17)
    s = paired.paired_ratios(list(num), list(den))
    r = num / den
    assert s.median == pytest.approx(np.median(r))
    assert (s.q1, s.q3) == (pytest.approx(np.percentile(r, 25)), pytest.approx(np.percentile(r, 75)))
    assert (s.low, s.high) == (pytest.approx(r.min()), pytest.approx(r.max()))


def test_one_burst_of_load_moves_the_median_little():
    bare = [10.0] * 9
    trainer = [9.0] * 8 + [1.0]  # one trainer block hit by another job
    s = paired.paired_ratios(trainer, bare)
    assert s.median == pytest.approx(0.9)
    assert s.low == pytest.approx(0.1)
    assert sum(t / b for t, b in zip(trainer, bare)) / 9 < 0.82  # the mean would have moved


def test_single_pair_and_text():
    s = paired.paired_ratios([3.0], [2.0])
    assert (s.median, s.q1, s.q3, s.low, s.high, s.n) == (1.5, 1.5, 1.5, 1.5, 1.5, 1)
    assert str(paired.paired_ratios([1.0, 2.0], [1.0, 1.0])) == "1.500 (IQR 1.250-1.750, min-max 1.000-2.000, 2 pairs)"


@pytest.mark.parametrize("num, den, match", [
    ([1.0, 2.0], [1.0], "2 numerators but 1 denominators"),
    ([], [], "no pairs"),
    ([1.0], [0.0], "finite and > 0; got 0.0"),
    ([float("nan")], [1.0], "finite and > 0; got nan"),
])
def test_bad_input_is_named(num, den, match):
    with pytest.raises(ValueError, match=match):
        paired.paired_ratios(num, den)
