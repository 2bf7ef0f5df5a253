"""Intervals and paired comparisons against published values and exact computations."""

import math

import pytest

from pipeline.evaluation.statistics import (
    mcnemar_exact,
    paired_bootstrap,
    paired_counts,
    paired_difference,
    paired_difference_from_counts,
    wilson,
)


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_published_values(k, n, low, high):
    rate = wilson(k, n)
    assert (rate.k, rate.n, rate.rate) == (k, n, k / n)
    assert rate.low == pytest.approx(low, abs=5e-5) and rate.high == pytest.approx(high, abs=5e-5)


def test_wilson_edges_and_confidence():
    assert wilson(0, 0).rate is None and str(wilson(0, 0)) == "n/a (n = 0)"
    assert wilson(10, 10).high == 1.0 and wilson(0, 10).low == 0.0
    z = 1.959964  # the two-sided 95 % normal quantile
    assert wilson(0, 10).high == pytest.approx(z ** 2 / (10 + z ** 2), abs=1e-6)
    assert wilson(30, 60, 0.99).low < wilson(30, 60, 0.95).low  # wider at higher confidence
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_mcnemar_exact_is_the_two_sided_binomial_test_on_discordant_pairs():
    # 10 vs 2 discordant: 2 * P(X <= 2 | n=12, p=1/2) = 2 * (1 + 12 + 66) / 4096
    assert mcnemar_exact(10, 2) == pytest.approx(158 / 4096)
    assert mcnemar_exact(2, 10) == mcnemar_exact(10, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(31, 0) == pytest.approx(2 / 2 ** 31)


def test_paired_difference_reduces_to_newcombes_hybrid_interval_without_correlation():
    # a*d == b*c: no correlation, so the paired interval is the combination of the two
    # Wilson intervals (Newcombe 1998, method 10), checked here against the independent-
    # samples value of Newcombe's example 56/70 vs 48/80 combined the same way: 0.0524, 0.3339.
    both, only_c, only_i, neither = 8, 8, 8, 8
    d = paired_difference_from_counts(both, only_c, only_i, neither)
    p1 = p2 = 0.5
    w = wilson(16, 32)
    assert d.difference == 0.0
    assert d.low == pytest.approx(-math.hypot(p1 - w.low, w.high - p2))
    assert d.high == pytest.approx(math.hypot(w.high - p1, p2 - w.low))
    r1, r2 = wilson(56, 70), wilson(48, 80)
    low = 0.8 - 0.6 - math.hypot(0.8 - r1.low, r2.high - 0.6)
    high = 0.8 - 0.6 + math.hypot(r1.high - 0.8, 0.6 - r2.low)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_paired_difference_uses_the_pairing():
    # Strongly correlated outcomes (most cases agree) give a narrower interval than the same
    # margins treated as independent.
    correlated = paired_difference_from_counts(40, 10, 2, 48)
    independent = paired_difference_from_counts(21, 29, 21, 29)  # same margins (50 vs 42), a*d == b*c
    assert correlated.difference == pytest.approx(independent.difference)
    assert correlated.high - correlated.low < independent.high - independent.low
    assert correlated.low > 0 > independent.low


def test_paired_difference_from_outcomes_and_known_large_gap():
    challenger = [True] * 32 + [False] * 28
    incumbent = [True] + [False] * 59
    assert paired_counts(challenger, incumbent) == (1, 31, 0, 28)
    d = paired_difference(challenger, incumbent)
    assert (d.n, d.only_challenger, d.only_incumbent) == (60, 31, 0)
    assert d.difference == pytest.approx(31 / 60)
    assert 0.35 < d.low < d.difference < d.high < 0.7
    assert d.p_value == pytest.approx(2 / 2 ** 31)
    assert d.challenger.k == 32 and d.incumbent.k == 1
    with pytest.raises(ValueError):
        paired_difference([True], [True, False])


def test_a_small_point_gain_is_not_significant():
    # 2 wins, 1 loss on 60 cases: +1.7 points, but the interval spans zero.
    d = paired_difference_from_counts(10, 2, 1, 47)
    assert d.difference > 0 and d.low < 0 < d.high and d.p_value == 1.0


def test_paired_bootstrap_is_deterministic_and_brackets_the_mean():
    challenger = [1.0, 0.5, 0.8, 0.9, 0.2, 1.0, 0.7, 0.4] * 5
    incumbent = [0.5, 0.5, 0.1, 0.9, 0.3, 0.2, 0.6, 0.4] * 5
    mean, low, high = paired_bootstrap(challenger, incumbent, seed=1)
    assert (mean, low, high) == paired_bootstrap(challenger, incumbent, seed=1)
    assert low < mean < high and mean == pytest.approx(0.25)
    assert paired_bootstrap([1.0] * 5, [1.0] * 5) == (0.0, 0.0, 0.0)
