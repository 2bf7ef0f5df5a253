"""Simulated agent deployment: demo landing data with ground truth now, a sandbox later.

`simulate` writes days of landing files (several formats, with the mess of real logs) and
the ground truth beside them. The same pieces evaluate a model later: take a trajectory's
`task_spec`, `replay(spec)` for the start state, let the model call `env.execute(...)`
(with `env.tool_schemas()` as its tools and `user.opening(...)` as the first message),
then `check_success(spec, env.state())`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pipeline.simulator.agent import AgentProfile, Episode, run_episode
from pipeline.simulator.env import SupportEnv, ToolResult
from pipeline.simulator.landing import DaySummary, write_day
from pipeline.simulator.tasks import TaskMix, TaskSpec, check_success, failed_checks, replay

__all__ = [
    "AgentProfile", "DaySummary", "Episode", "SimulationSummary", "SupportEnv", "TaskMix", "TaskSpec",
    "ToolResult", "check_success", "failed_checks", "replay", "run_episode", "simulate",
]


@dataclass(frozen=True)
class SimulationSummary:
    out_dir: Path
    days: list[DaySummary]


def simulate(
    days: int,
    per_day: int,
    out_dir: Path,
    seed: int = 7,
    start_date: date = date(2026, 11, 16),
    profile: AgentProfile | None = None,
    mix: TaskMix | None = None,
) -> SimulationSummary:
    """Write `days` days of `per_day` conversations under `out_dir`; same arguments, same bytes."""
    out_dir = Path(out_dir)
    summaries = [
        write_day(out_dir, seed, day, start_date + timedelta(days=day - 1), per_day, mix or TaskMix(),
                  profile or AgentProfile())
        for day in range(1, days + 1)
    ]
    return SimulationSummary(out_dir, summaries)
