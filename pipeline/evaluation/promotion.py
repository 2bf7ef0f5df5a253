"""The promotion rule: does the challenger replace the incumbent (the champion, or the base
model when there is no champion yet)?

Promote only if the challenger beats the incumbent on `primary_metric` (overall), strictly
and by at least `margin` (a tie never replaces the incumbent, even with margin 0), AND on no task type does `segment_metric` regress by more than
`tolerance`. Inputs are model results as built by `report.model_result` (any dict with
"overall": {metric: value} and "by_task_type": {task_type: {metric: value}}). Deltas are
challenger minus incumbent; for metrics where lower is better (`LOWER_IS_BETTER`, e.g.
invalid_call_rate) an improvement is a negative delta and the rule is applied to the
improvement (-delta). Margin and tolerance are absolute (rates in [0, 1]). A task type the
incumbent has no value for is skipped; one the challenger lacks while the incumbent has it
refuses promotion (the two were not evaluated on the same cases).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

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


def _improvement(metric: str, delta: float) -> float:
    return -delta if metric in LOWER_IS_BETTER else delta


def _value(result: Mapping[str, Any], *path: str) -> float | None:
    node: Any = result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def decide_promotion(
    challenger: Mapping[str, Any],
    incumbent: Mapping[str, Any],
    incumbent_name: str,
    primary_metric: str,
    margin: float,
    tolerance: float,
    segment_metric: str,
) -> Decision:
    reasons: list[str] = []
    by_margin = f" by at least {margin:.3f}" if margin > 0 else ""  # a zero margin goes unsaid
    deltas: dict[str, Any] = {"incumbent": incumbent_name, "primary": {}, "by_task_type": {}}
    c_value, i_value = _value(challenger, "overall", primary_metric), _value(incumbent, "overall", primary_metric)
    primary_ok = False
    if c_value is None or i_value is None:
        missing = "challenger" if c_value is None else incumbent_name
        reasons.append(f"{primary_metric} is missing for the {missing}: cannot compare")
    else:
        delta = c_value - i_value
        deltas["primary"] = {"metric": primary_metric, "challenger": c_value, "incumbent": i_value, "delta": delta}
        gain = _improvement(primary_metric, delta)
        primary_ok = gain > 1e-12 and gain >= margin - 1e-12
        direction = "lower is better" if primary_metric in LOWER_IS_BETTER else "higher is better"
        reasons.append(
            f"{primary_metric} ({direction}): challenger {c_value:.3f} vs {incumbent_name} {i_value:.3f} "
            f"({delta:+.3f}); required: better{',' + by_margin if by_margin else ''}: "
            + ("met" if primary_ok else "not met")
        )

    regressions = []
    c_types: Mapping[str, Any] = challenger.get("by_task_type") or {}
    i_types: Mapping[str, Any] = incumbent.get("by_task_type") or {}
    for task_type in sorted(set(c_types) | set(i_types)):
        c_seg, i_seg = _value(c_types, task_type, segment_metric), _value(i_types, task_type, segment_metric)
        if i_seg is None:
            continue
        if c_seg is None:
            regressions.append(task_type)
            reasons.append(f"task type {task_type}: {segment_metric} is missing for the challenger "
                           f"({incumbent_name} has {i_seg:.3f}): cannot rule out a regression")
            continue
        delta = c_seg - i_seg
        deltas["by_task_type"][task_type] = {"metric": segment_metric, "challenger": c_seg, "incumbent": i_seg,
                                             "delta": delta}
        if _improvement(segment_metric, delta) < -tolerance - 1e-12:
            regressions.append(task_type)
            reasons.append(
                f"task type {task_type} regressed on {segment_metric} by {abs(delta):.3f} "
                f"({i_seg:.3f} -> {c_seg:.3f}), beyond the tolerance {tolerance:.3f}"
            )
    if not regressions:
        reasons.append(f"no task type regressed on {segment_metric} by more than {tolerance:.3f}")

    promote = primary_ok and not regressions
    if promote:
        reasons.insert(0, f"promote: the challenger beats the {incumbent_name} on {primary_metric}{by_margin}"
                          " without regressing on any task type")
    else:
        why = []
        if not primary_ok:
            why.append(f"it does not beat the {incumbent_name} on {primary_metric}{by_margin}")
        if regressions:
            why.append(f"it regresses on {', '.join(regressions)}")
        reasons.insert(0, f"keep the {incumbent_name}: " + " and ".join(why))
    return Decision(promote, reasons, deltas)
