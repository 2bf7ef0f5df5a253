"""Reinforcement learning in the sandbox: the rewards of an episode and what an episode
adds to the token stream, as plain functions (the trainer is `pipeline.learning.rl`).

Reward of one episode (a sandbox conversation of the policy on a training-split task):

* `verified`: 1.0 when the task's success checks hold on the environment's final state
  (`pipeline.simulator.tasks.check_success`, the same judgement as evaluation), else 0.0.
  Nothing in the transcript counts, only what the episode did to the shop's state.
* shaping, logged apart and weighted by `RewardWeights` (set a weight to 0 to train on the
  verified reward alone):
  - `well_formed`: the share of the policy's tool calls that the environment ran without an
    error, a turn that could not be parsed (which ends the episode) counting as a failed call;
    0 when the episode made no call. Text turns do not count: every task needs tools, and a
    reward for well-formed text would pay the policy for ending the episode at once.
  - `violation`: 1.0 when the episode changed state that the task does not allow (an
    `unchanged_except` check failed: refunding another order, say), else 0.0; weighted
    negatively. That check is one of the task's success checks, so a violating episode has
    already failed: the penalty ranks a failure that did damage below one that did not.

The total reward TRL optimises is verified + w * well_formed + w' * violation (w' < 0); the
advantage is that minus the mean of the task's group (not divided by its spread, so shaping
stays as small as its weight).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.training.chat_template import END_OF_TURN

REWARD_TERMS = ("verified", "well_formed", "violation")


@dataclass(frozen=True)
class RewardWeights:
    """How much each term weighs in the reward TRL optimises (verified always weighs 1)."""

    well_formed: float = 0.1
    violation: float = -0.5

    def as_list(self) -> list[float]:
        """In the order of REWARD_TERMS (TRL's `reward_weights`)."""
        return [1.0, self.well_formed, self.violation]


def reward_terms(trial: Mapping[str, Any]) -> dict[str, float]:
    """The reward terms of a finished sandbox trial (`pipeline.evaluation.sandbox.Trial` as a
    dict: success, termination, n_tool_calls, n_failed_tool_calls, failed_checks, messages)."""
    unparsed = sum(1 for m in trial["messages"] if m.get("role") == "assistant" and m.get("parse_error"))
    attempts = trial["n_tool_calls"] + unparsed
    accepted = trial["n_tool_calls"] - trial["n_failed_tool_calls"]
    return {
        "verified": 1.0 if trial["success"] else 0.0,
        "well_formed": accepted / attempts if attempts else 0.0,
        "violation": 1.0 if any(c.get("op") == "unchanged_except" for c in trial["failed_checks"]) else 0.0,
    }


def environment_text(through_assistant: str, continued: str) -> str:
    """What the environment adds after an assistant turn, as text: `continued` (the
    conversation rendered with the tool results or the user's reply and the next assistant
    opener) minus `through_assistant` (the same conversation rendered up to and including
    that assistant turn), cut right after the assistant turn's end marker, which the policy
    wrote itself. Raises when `continued` does not extend `through_assistant` (a template
    that re-renders earlier turns could not be trained on token by token)."""
    cut = through_assistant.rfind(END_OF_TURN)
    if cut < 0:
        raise ValueError("the rendered conversation has no end-of-turn marker")
    cut += len(END_OF_TURN)
    if not continued.startswith(through_assistant[:cut]):
        raise ValueError("the chat template re-renders earlier turns: episodes cannot be extended token by token")
    return continued[cut:]


def summarize_episodes(task_types: Sequence[str], terms: Sequence[Mapping[str, float]],
                       turns: Sequence[int], weights: RewardWeights) -> dict[str, float]:
    """Per-step metrics of a batch of episodes: the mean of each term, the shaped part of
    the reward, the total, the verified reward per task type, and the mean episode length."""
    n = len(terms)
    if not n:
        return {}
    out = {f"reward.{term}": sum(t[term] for t in terms) / n for term in REWARD_TERMS}
    out["reward.shaped"] = weights.well_formed * out["reward.well_formed"] + weights.violation * out["reward.violation"]
    out["reward.total"] = out["reward.verified"] + out["reward.shaped"]
    by_type: dict[str, list[float]] = defaultdict(list)
    for task_type, t in zip(task_types, terms):
        by_type[task_type].append(t["verified"])
    for task_type, values in sorted(by_type.items()):
        out[f"reward.verified.{task_type}"] = sum(values) / len(values)
    out["episode_turns"] = sum(turns) / n
    return out
