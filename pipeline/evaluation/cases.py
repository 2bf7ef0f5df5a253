"""Eval cases from `marts.eval_cases`, next-action predictions, and the sandbox's task list.

Pure: the rows come from the release's Parquet (the asset) or from the warehouse
(`pipeline.shell.marts.load_eval_cases`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict

from pipeline.evaluation.policy import Message, Policy
from pipeline.simulator.tasks import TaskSpec

JSON_COLUMNS = ("prompt", "expected_tool_call", "tools", "task_spec")
COLUMNS = ("case_id", "record_key", "task_type", "prompt", "expected_kind", "expected_tool_call",
           "expected_answer", "tools", "task_spec")


class EvalCase(TypedDict):
    case_id: str
    record_key: str
    task_type: str
    prompt: list[Message]
    expected_kind: str  # tool_call | final_answer
    expected_tool_call: dict[str, Any] | None  # {name, arguments}
    expected_answer: str | None
    tools: list[dict[str, Any]]
    task_spec: TaskSpec | None


def load_case(row: Mapping[str, Any]) -> EvalCase:
    """A case from a table row: JSON columns decoded (DuckDB returns them as text)."""
    case = {k: row.get(k) for k in COLUMNS}
    for k in JSON_COLUMNS:
        if isinstance(case[k], (str, bytes)):
            case[k] = json.loads(case[k])
    return EvalCase(**case)  # type: ignore[typeddict-item]


def predict_cases(cases: Sequence[EvalCase], policy: Policy, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None, chunk: int = 16) -> list[Message]:
    """The policy's next assistant message for every case's prompt (same seed for all). A
    policy with `act_many` gets the cases `chunk` at a time (batched generation)."""
    predictions: list[Message] = []
    act_many = getattr(policy, "act_many", None)
    step = chunk if act_many is not None else 1
    for start in range(0, len(cases), step):
        batch = cases[start:start + step]
        if act_many is not None:
            predictions += act_many([([dict(m) for m in c["prompt"]], c["tools"]) for c in batch], seed)
        else:
            predictions += [policy.act([dict(m) for m in c["prompt"]], c["tools"], seed) for c in batch]
        if progress:
            progress(len(predictions), len(cases))
    return predictions


def task_id(spec: Mapping[str, Any]) -> str:
    """A stable id for a task spec: its type and a hash of its canonical JSON."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"{spec['task_type']}:{digest}"


def task_specs(cases: Iterable[EvalCase]) -> dict[str, TaskSpec]:
    """The distinct task specs behind the cases (many cases share a trajectory), by task_id."""
    specs: dict[str, TaskSpec] = {}
    for case in cases:
        spec = case.get("task_spec")
        if spec:
            specs.setdefault(task_id(spec), spec)
    return dict(sorted(specs.items()))


def case_subset(cases: Sequence[EvalCase], limit: int) -> list[EvalCase]:
    """Up to `limit` cases (0: all), chosen by a hash of the case id: deterministic,
    independent of content, and as a release grows most of the previous subset stays in it
    (so a nightly run re-scores mostly cases whose outputs are cached)."""
    ordered = sorted(cases, key=lambda c: hashlib.sha256(c["case_id"].encode()).hexdigest())
    return list(ordered[:limit] if limit else ordered)


def spread_tasks(specs: Mapping[str, TaskSpec], limit: int) -> dict[str, TaskSpec]:
    """Up to `limit` task specs, taking the task types in turn (task id order within a
    type), so that a few tasks still cover the types."""
    by_type: dict[str, list[tuple[str, TaskSpec]]] = {}
    for tid, spec in specs.items():
        by_type.setdefault(spec["task_type"], []).append((tid, spec))
    chosen: dict[str, TaskSpec] = {}
    while len(chosen) < limit and any(by_type.values()):
        for queue in by_type.values():
            if queue and len(chosen) < limit:
                tid, spec = queue.pop(0)
                chosen[tid] = spec
    return dict(sorted(chosen.items()))
