"""A day of simulated deployment traffic: tasks → episodes → complete trajectories, each
with its PII ground truth.

A day has a pool of shops (one per ~4 conversations), so customers come back within a
day as they do in reality, while shops stay small enough to copy per episode. Every
trajectory draws from its own seeded stream, so one trajectory never shifts another.
PII ground truth is found, not assumed: each value the user could type is searched for in
the finished steps, so it lists exactly the places a value really occurs.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from random import Random

from pipeline.core.record import Provenance, Step, Trajectory
from pipeline.simulator import user
from pipeline.simulator.agent import REQUEST_PARAMS, SYSTEM_PROMPT, AgentProfile, run_episode
from pipeline.simulator.feedback import conflicts, consent_for, feedback_for
from pipeline.simulator.tasks import TaskMix, replay, sample_task

TENANTS = ("brewline-us", "brewline-eu", "brewline-b2b")
MODELS = ("gpt-4.1-mini", "gpt-4.1")
AGENT_NAME = "support-agent"
CONVERSATIONS_PER_SHOP = 4


@dataclass(frozen=True)
class PiiSpan:
    trajectory_id: str
    step: int
    field: str  # content / arguments / tool_result
    entity_type: str
    value: str


@dataclass(frozen=True)
class SimRecord:
    trajectory: Trajectory
    pii: list[PiiSpan]
    feedback_conflict: bool


def simulate_day(seed: int, day: int, on: date, per_day: int, mix: TaskMix, profile: AgentProfile) -> list[SimRecord]:
    """`per_day` trajectories of 1-based `day` (dated `on`), in start-time order."""
    shop_rng = Random(f"shops:{seed}:{day}")
    shops = [shop_rng.randrange(2**31) for _ in range(max(1, per_day // CONVERSATIONS_PER_SHOP))]
    version = f"2026.11.{int(day >= mix.drift_day)}"  # the drift tool shipped with a new build
    records = [
        _conversation(Random(f"conversation:{seed}:{day}:{i}"), day, on, shops, mix, profile, version)
        for i in range(per_day)
    ]
    return sorted(records, key=lambda r: (r.trajectory.started_at or "", r.trajectory.trajectory_id))


def _conversation(rng: Random, day: int, on: date, shops: list[int], mix: TaskMix, profile: AgentProfile,
                  version: str) -> SimRecord:
    shop = rng.randrange(len(shops))
    spec = sample_task(rng, day, mix, env_seed=shops[shop])
    env = replay(spec)
    episode = run_episode(spec, profile, rng, env)
    started = datetime.combine(on, time(6), UTC) + timedelta(seconds=rng.uniform(0, 17 * 3600))
    ended = started + timedelta(milliseconds=episode.duration_ms)
    feedback = feedback_for(episode.outcome, spec["goal"], ended, rng)
    trajectory_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    tenant = TENANTS[shop % len(TENANTS)]
    trajectory = Trajectory(
        trajectory_id=trajectory_id,
        session_id=f"sess-{rng.getrandbits(48):012x}",
        user_id="u_" + hashlib.sha256(f"{tenant}:{spec['params']['customer_id']}".encode()).hexdigest()[:12],
        tenant=tenant,
        agent_name=AGENT_NAME,
        agent_version=version,
        model=rng.choices(MODELS, (7, 3))[0],
        task_type=spec["task_type"],
        goal=spec["goal"],
        started_at=_iso(started),
        ended_at=_iso(ended),
        system_prompt=SYSTEM_PROMPT,
        tools=env.tool_schemas(),
        request_params=dict(REQUEST_PARAMS),
        steps=episode.steps,
        outcome=episode.outcome,
        feedback=feedback,
        consent=consent_for(rng),
        provenance=Provenance(source_format="canonical", source_uri="", line=0),  # set on landing
        task_spec=dict(spec),
    )
    pii = locate_pii(trajectory_id, episode.steps, user.pii_values(user.user_facts(spec)))
    return SimRecord(trajectory, pii, conflicts(episode.outcome, feedback))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def step_fields(step: Step) -> Iterator[tuple[str, str]]:
    """(ground-truth field, text) of a step where personal data can occur."""
    if step.content:
        yield ("tool_result" if step.role == "tool" else "content"), step.content
    for call in step.tool_calls:
        yield "arguments", json.dumps(call.arguments, ensure_ascii=False)


def locate_pii(trajectory_id: str, steps: list[Step], values: list[tuple[str, str]]) -> list[PiiSpan]:
    """One span per (step, field, value) where the value occurs verbatim."""
    spans = (
        PiiSpan(trajectory_id, step.index, field, entity_type, value)
        for step in steps
        for field, text in step_fields(step)
        for entity_type, value in values
        if value in text
    )
    return list(dict.fromkeys(spans))
