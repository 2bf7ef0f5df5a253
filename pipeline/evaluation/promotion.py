"""The promotion rule: does the challenger replace the incumbent (the champion, or the base
model when there is no champion yet)? Decided on evidence, not on point estimates.

Both models are judged on the same units (eval cases; sandbox tasks for pass^k), so the
comparison is paired: for each metric, `statistics.paired_difference` gives challenger
minus incumbent with Newcombe's paired 95 % interval and the exact McNemar p.

Promote only if
1. on `primary_metric` (overall) the LOWER bound of the improvement exceeds `margin`: the
   gain is established, not just positive (with margin 0: the interval excludes zero; a tie
   or a gain within the noise keeps the incumbent); and
2. no task type with at least `min_segment_units` paired units shows an established
   regression beyond `tolerance` on `segment_metric`: the UPPER bound of its improvement is
   below -tolerance. Task types with fewer units are listed as too small to judge.
For metrics where lower is better (`LOWER_IS_BETTER`, e.g. invalid_call_rate) the
improvement is incumbent minus challenger. Margin and tolerance are absolute (rates in
[0, 1]). Inputs are model results as built by `report.model_result` ("outcomes":
{metric: {unit: bool}}, "units": {unit: task_type}); units only one model has are left out
and counted in the reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.evaluation.statistics import PairedDifference, paired_difference

LOWER_IS_BETTER = frozenset({
    "invalid_call_rate", "unparseable_rate", "unknown_tool_rate", "schema_invalid_rate", "avg_turns",
})


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    deltas: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def incumbent_for(champion: Mapping[str, Any] | None, base: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The model to beat and its name: the champion, or the base model when there is none."""
    return (champion, "champion") if champion else (base, "base")


@dataclass(frozen=True)
class Comparison:
    """Challenger vs incumbent on one metric over the units both were judged on."""

    metric: str
    paired: PairedDifference
    improvement: float | None  # difference, sign flipped for lower-is-better metrics
    low: float | None  # interval of the improvement
    high: float | None
    unpaired: int  # units only one of the two has

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "improvement": self.improvement, "low": self.low, "high": self.high,
                "unpaired": self.unpaired, "paired": self.paired.to_dict()}

    def describe(self) -> str:
        p = self.paired
        if self.improvement is None:
            return f"{self.metric}: no unit judged for both models"
        direction = "lower is better" if self.metric in LOWER_IS_BETTER else "higher is better"
        return (f"{self.metric} ({direction}): challenger {p.challenger} vs {p.incumbent}; "
                f"improvement {self.improvement:+.3f} [{self.low:+.3f}, {self.high:+.3f}] "
                f"(95 % paired interval, n = {p.n}, {p.only_challenger} better / {p.only_incumbent} worse, "
                f"McNemar p = {p.p_value:.2g})")


def compare(challenger: Mapping[str, Any], incumbent: Mapping[str, Any], metric: str,
            task_type: str | None = None, confidence: float = 0.95) -> Comparison:
    """The paired comparison on `metric`, over one task type's units or all of them."""
    c_out: Mapping[str, bool] = (challenger.get("outcomes") or {}).get(metric) or {}
    i_out: Mapping[str, bool] = (incumbent.get("outcomes") or {}).get(metric) or {}
    units: Mapping[str, str] = {**(incumbent.get("units") or {}), **(challenger.get("units") or {})}

    def wanted(unit: str) -> bool:
        return task_type is None or units.get(unit) == task_type

    c_units = {u for u in c_out if wanted(u)}
    i_units = {u for u in i_out if wanted(u)}
    common = sorted(c_units & i_units)
    paired = paired_difference([c_out[u] for u in common], [i_out[u] for u in common], confidence)
    unpaired = len(c_units ^ i_units)
    if paired.difference is None:
        return Comparison(metric, paired, None, None, None, unpaired)
    if metric in LOWER_IS_BETTER:
        return Comparison(metric, paired, -paired.difference, -paired.high, -paired.low, unpaired)
    return Comparison(metric, paired, paired.difference, paired.low, paired.high, unpaired)


def decide_promotion(
    challenger: Mapping[str, Any],
    incumbent: Mapping[str, Any],
    incumbent_name: str,
    primary_metric: str = "action_accuracy",
    margin: float = 0.0,
    tolerance: float = 0.1,
    segment_metric: str = "action_accuracy",
    min_segment_units: int = 10,
    confidence: float = 0.95,
) -> Decision:
    reasons: list[str] = []
    by_margin = f" by more than {margin:.3f}" if margin > 0 else ""  # a zero margin goes unsaid
    primary = compare(challenger, incumbent, primary_metric, confidence=confidence)
    deltas: dict[str, Any] = {"incumbent": incumbent_name, "confidence": confidence,
                              "primary": primary.to_dict(), "by_task_type": {}}
    primary_ok = primary.low is not None and primary.low > margin + 1e-12
    if primary.improvement is None:
        reasons.append(f"{primary_metric}: no case was judged for both the challenger and the {incumbent_name}: "
                       "cannot compare")
    else:
        reasons.append(
            primary.describe() + f"; required: lower bound above {margin:.3f}: " + ("met" if primary_ok else "not met"))
    if primary.unpaired:
        reasons.append(f"{primary.unpaired} units judged for only one of the two models were left out")

    regressions, too_small = [], []
    units = {**(incumbent.get("units") or {}), **(challenger.get("units") or {})}
    segment_units = set((challenger.get("outcomes") or {}).get(segment_metric) or {})
    for task_type in sorted({units[u] for u in segment_units if u in units}):
        comparison = compare(challenger, incumbent, segment_metric, task_type, confidence)
        deltas["by_task_type"][task_type] = comparison.to_dict()
        if comparison.paired.n < min_segment_units:
            too_small.append(f"{task_type} (n = {comparison.paired.n})")
            continue
        if comparison.high is not None and comparison.high < -tolerance - 1e-12:
            regressions.append(task_type)
            reasons.append(f"task type {task_type} regressed beyond the tolerance {tolerance:.3f}: "
                           + comparison.describe())
    if not regressions:
        reasons.append(f"no task type with at least {min_segment_units} cases shows a {segment_metric} regression "
                       f"beyond {tolerance:.3f} (upper bound of the improvement below -{tolerance:.3f})")
    if too_small:
        reasons.append(f"too few cases to judge a regression: {', '.join(too_small)}")

    promote = primary_ok and not regressions
    if promote:
        reasons.insert(0, f"promote: the challenger beats the {incumbent_name} on {primary_metric}{by_margin}, "
                          f"beyond the {confidence:.0%} interval, without an established regression on any task type")
    else:
        why = []
        if not primary_ok:
            why.append(f"its gain on {primary_metric} over the {incumbent_name} is not established{by_margin} "
                       f"at {confidence:.0%}")
        if regressions:
            why.append(f"it regresses on {', '.join(regressions)}")
        reasons.insert(0, f"keep the {incumbent_name}: " + " and ".join(why))
    return Decision(promote, reasons, deltas)
