"""Uncertainty of evaluation results: pure functions over counts and paired outcomes.

- `wilson(k, n)`: the Wilson score interval of a rate (Wilson 1927; computed by scipy), the interval every rate
  in the report carries. Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps
  near-nominal coverage at the small n and extreme rates evaluation produces (0 of 60).
- `paired_difference(challenger, incumbent)`: two models judged on the SAME cases. The
  difference of their rates gets Newcombe's hybrid score interval for paired data (Newcombe
  1998, Statistics in Medicine 17:2635, method 10): the two Wilson intervals combined with
  the correlation of the pairs, so that cases both models get right (or wrong) narrow the
  interval instead of being counted as independent evidence (no library we have computes
  it; it is a few lines over scipy's Wilson intervals). It comes with the exact McNemar
  test (a two-sided binomial test on the discordant pairs).
- `paired_bootstrap(...)`: a percentile bootstrap over cases for any per-case score (F1,
  say), seeded, for metrics that are not right/wrong.

The promotion rule reads the lower bound of the paired interval; the report prints every
rate with its n and interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Rate:
    """k successes of n, with its Wilson interval (rate and bounds None when n is 0)."""

    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.rate is None:
            return f"n/a (n = {self.n})"
        return f"{self.k}/{self.n} = {self.rate:.2f} [{self.low:.2f}, {self.high:.2f}]"


def wilson(k: int, n: int, confidence: float = 0.95) -> Rate:
    """The Wilson score interval of k successes in n trials (scipy's `binomtest`)."""
    from scipy.stats import binomtest

    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Rate(k, n, None, None, None, confidence)
    interval = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(k, n, k / n, float(interval.low), float(interval.high), confidence)


def mcnemar_exact(only_challenger: int, only_incumbent: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference" each discordant pair is a fair
    coin (scipy's exact binomial test). 1.0 with no discordant pairs."""
    from scipy.stats import binomtest

    n = only_challenger + only_incumbent
    return float(binomtest(only_challenger, n, 0.5).pvalue) if n else 1.0


@dataclass(frozen=True)
class PairedDifference:
    """Challenger minus incumbent on the same n cases (rates as fractions)."""

    n: int
    both: int  # cases both models got right
    only_challenger: int
    only_incumbent: int
    neither: int
    challenger: Rate
    incumbent: Rate
    difference: float | None
    low: float | None
    high: float | None
    p_value: float  # exact McNemar, two-sided
    confidence: float = 0.95
    method: str = "Newcombe paired score (method 10) + exact McNemar"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["challenger"], out["incumbent"] = self.challenger.to_dict(), self.incumbent.to_dict()
        return out

    def __str__(self) -> str:
        if self.difference is None:
            return f"n/a (n = {self.n})"
        return (f"{self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}] "
                f"(n = {self.n}, {self.only_challenger} won / {self.only_incumbent} lost, "
                f"McNemar p = {self.p_value:.2g})")


def paired_counts(challenger: Sequence[bool], incumbent: Sequence[bool]) -> tuple[int, int, int, int]:
    """(both, only_challenger, only_incumbent, neither) over paired outcomes."""
    if len(challenger) != len(incumbent):
        raise ValueError(f"paired outcomes differ in length: {len(challenger)} vs {len(incumbent)}")
    both = sum(1 for c, i in zip(challenger, incumbent) if c and i)
    only_c = sum(1 for c, i in zip(challenger, incumbent) if c and not i)
    only_i = sum(1 for c, i in zip(challenger, incumbent) if i and not c)
    return both, only_c, only_i, len(challenger) - both - only_c - only_i


def paired_difference(challenger: Sequence[bool], incumbent: Sequence[bool],
                      confidence: float = 0.95) -> PairedDifference:
    """Newcombe's paired interval for P(challenger right) - P(incumbent right), and McNemar."""
    return paired_difference_from_counts(*paired_counts(challenger, incumbent), confidence=confidence)


def paired_difference_from_counts(both: int, only_challenger: int, only_incumbent: int, neither: int,
                                  confidence: float = 0.95) -> PairedDifference:
    a, b, c, d = both, only_challenger, only_incumbent, neither
    if min(a, b, c, d) < 0:
        raise ValueError("counts must be non-negative")
    n = a + b + c + d
    rate_c, rate_i = wilson(a + b, n, confidence), wilson(a + c, n, confidence)
    p_value = mcnemar_exact(b, c)
    if n == 0:
        return PairedDifference(0, 0, 0, 0, 0, rate_c, rate_i, None, None, None, p_value, confidence)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1, l2, u2 = rate_c.low, rate_c.high, rate_i.low, rate_i.high
    # Correlation of the paired outcomes, with Newcombe's continuity correction when positive.
    spread = (a + b) * (c + d) * (a + c) * (b + d)
    if spread == 0:
        phi = 0.0
    else:
        cross = a * d - b * c
        phi = (max(cross - n / 2, 0.0) if cross > 0 else cross) / math.sqrt(spread)
    delta = p1 - p2
    down = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    up = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return PairedDifference(n, a, b, c, d, rate_c, rate_i, delta, max(-1.0, delta - down), min(1.0, delta + up),
                            p_value, confidence)


def paired_bootstrap(challenger: Sequence[float], incumbent: Sequence[float], confidence: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean difference, low, high): percentile bootstrap over cases of the mean of
    challenger - incumbent per case. Deterministic for a seed."""
    if len(challenger) != len(incumbent):
        raise ValueError(f"paired scores differ in length: {len(challenger)} vs {len(incumbent)}")
    diffs = [float(c) - float(i) for c, i in zip(challenger, incumbent)]
    if not diffs:
        raise ValueError("no paired scores")
    n = len(diffs)
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[max(0, math.floor(tail * resamples))]
    high = means[min(resamples - 1, math.ceil((1 - tail) * resamples) - 1)]
    return sum(diffs) / n, low, high
