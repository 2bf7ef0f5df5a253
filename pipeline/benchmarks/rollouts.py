"""`flywheel bench rollouts`: sandbox episodes/s of the RL rollout path against transformers'
plain `generate` loop.

The same model and the same (task, seed) episodes (simulator tasks, training-split-like), in
one process: first `run_episodes` on the batched engine (the episodes of a round decoded
together, the shared system turn read once), then the same `run_episodes` with transformers'
`generate` one prompt at a time, the way one would write a rollout loop from its
documentation. Greedy by default, so that both arms do the same work: the episodes must
come out identical (checked); `--temperature` > 0 times sampling instead (then the episodes
differ and only the rates compare).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any


def run_rollout_bench(model_dir: Path, n_tasks: int = 4, group_size: int = 2, max_turns: int = 6,
                      max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0,
                      log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    from pipeline.evaluation.cases import task_id
    from pipeline.learning.generate import BatchedEngine, TransformersEngine
    from pipeline.learning.rl import run_episodes
    from pipeline.simulator.tasks import TaskMix, sample_task

    rng = Random(seed)
    specs = [sample_task(rng, 5, TaskMix(), 7) for _ in range(n_tasks)]
    episodes = [(task_id(s), s, g) for s in specs for g in range(group_size)]
    arms: dict[str, Any] = {}
    streams: dict[str, list[list[int]]] = {}
    for name, make in (("batched (ours)", lambda: BatchedEngine(model_dir, max_new_tokens)),
                       ("transformers generate", lambda: TransformersEngine(model_dir, max_new_tokens))):
        log(f"{name}: {len(episodes)} episodes")
        engine = make()
        started = time.perf_counter()
        done = run_episodes(episodes, engine, max_turns, temperature, torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - started
        streams[name] = [e.completion_ids for e in done]
        policy_tokens = sum(sum(e.env_mask) for e in done)
        arms[name] = {"episodes": len(done), "seconds": seconds, "episodes_per_second": len(done) / seconds,
                      "turns": sum(e.conversation.turns for e in done), "policy_tokens": policy_tokens,
                      "policy_tokens_per_second": policy_tokens / seconds,
                      "successes": sum(not e.conversation.trial().failed_checks for e in done)}
    ours, plain = streams["batched (ours)"], streams["transformers generate"]
    return {"model": str(model_dir), "max_new_tokens": max_new_tokens, "max_turns": max_turns,
            "temperature": temperature, "arms": arms,
            "speedup": arms["transformers generate"]["seconds"] / arms["batched (ours)"]["seconds"],
            "identical": sum(a == b for a, b in zip(ours, plain)) if temperature <= 0 else None,
            "total": len(episodes)}


def format_rollout_bench(result: dict[str, Any]) -> str:
    sampling = "greedy" if result["temperature"] <= 0 else f"sampled at temperature {result['temperature']}"
    lines = [f"model {result['model']}, {sampling}, up to {result['max_turns']} turns x "
             f"{result['max_new_tokens']} new tokens per episode",
             f"{'arm':<24}{'episodes':>9}{'seconds':>10}{'episodes/s':>12}{'turns':>7}{'policy tokens/s':>17}"
             f"{'successes':>11}"]
    for name, arm in result["arms"].items():
        lines.append(f"{name:<24}{arm['episodes']:>9}{arm['seconds']:>10.1f}{arm['episodes_per_second']:>12.3f}"
                     f"{arm['turns']:>7}{arm['policy_tokens_per_second']:>17.1f}{arm['successes']:>11}")
    same = (f"; identical episodes {result['identical']}/{result['total']}" if result["identical"] is not None
            else "")
    lines.append(f"speedup {result['speedup']:.2f}x (transformers generate seconds / ours){same}")
    return "\n".join(lines)
