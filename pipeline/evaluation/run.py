"""One call per model for the asset: next-action metrics on the eval cases, then the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pipeline.evaluation.cases import EvalCase, predict_cases, task_specs
from pipeline.evaluation.metrics import score_case
from pipeline.evaluation.policy import Policy
from pipeline.evaluation.report import model_result
from pipeline.evaluation.sandbox import DEFAULT_MAX_TURNS, PolicyFactory, evaluate_sandbox
from pipeline.simulator.tasks import TaskSpec


def evaluate_model(
    name: str,
    policy: Policy,
    cases: Sequence[EvalCase],
    k: int | None = 3,
    seed: int = 0,
    max_turns: int = DEFAULT_MAX_TURNS,
    tasks: Mapping[str, TaskSpec] | None = None,
    sandbox_policy: Policy | PolicyFactory | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """`model_result` for `policy`: every case scored (one seeded prediction each), and the
    distinct task specs of the cases (or `tasks`) run k times in the sandbox (k=None: skip)."""
    predictions = predict_cases(cases, policy, seed, progress and (lambda i, n: progress("cases", i, n)))
    scores = [score_case(c, p) for c, p in zip(cases, predictions)]
    sandbox = None
    if k:
        sandbox = evaluate_sandbox(
            tasks if tasks is not None else task_specs(cases), sandbox_policy or policy, k, seed, max_turns,
            progress and (lambda i, n: progress("sandbox", i, n)),
        )
    return model_result(name, scores, sandbox, cases)
