"""GRPO in the simulator's sandbox with TRL, starting from the SFT model.

    result = train_grpo(tasks, sft_model_dir, out_dir, RLConfig(), on_log=log_to_mlflow)

Why TRL's `rollout_func` and not its `environment_factory`: TRL 1.16 offers both for
multi-turn training. `environment_factory` exposes an environment's methods as tools and
ends a rollout at the first turn without a tool call; our episodes also have a simulated
user who answers when the agent asks for a fact (the order number, the email), as in the
logged conversations. `rollout_func` hands the rollout to us and keeps the rest with TRL:
group-relative advantages, the clipped policy loss, KL to the reference model, optimizer
and logging. We return, per rollout, the prompt ids, the completion ids (every token after
the prompt: the policy's turns as sampled and, in between, the tool results and the user's
replies) and `env_mask` (1 on the policy's tokens, 0 on the environment's), which TRL
multiplies into the loss mask, so tool results and user turns carry no loss.

A rollout (`run_episodes`) is a sandbox conversation (`SandboxConversation`: the task's shop
state, its tools, the simulated user) driven by the policy being trained, sampled at the
trainer's temperature through `BatchedEngine` (shared system-turn cache, conversations of a
step decoded together; `flywheel bench rollouts` measures it against plain `generate`). The
reward is computed from the final state (`pipeline.core.rl`), never from the transcript.

The dataset's `prompt` column holds task ids, not conversations: the episode, not the
dataset, renders the opening (system prompt, tools, the simulated user's first message),
and `rollout_func` receives only the prompts.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.core.rl import REWARD_TERMS, RewardWeights, environment_text, reward_terms, summarize_episodes
from pipeline.core.training.chat_template import CHAT_TEMPLATE, parse_assistant_output
from pipeline.evaluation.policy import turn_message
from pipeline.evaluation.sandbox import SandboxConversation
from pipeline.learning.base_model import ModelRef
from pipeline.learning.generate import (
    SHARED_PREFIX_ATTENTION,
    BatchedEngine,
    prompt_ids,
    register_shared_prefix_attention,
)
from pipeline.learning.tokenizer import load_tokenizer
from pipeline.learning.train import PeakMemory, quiet_trainer, resolve_precision, save_merged
from pipeline.simulator import agent
from pipeline.simulator.tasks import TaskSpec

OnLog = Callable[[int, dict[str, float]], None]


@dataclass
class RLConfig:
    """One optimizer step = `tasks_per_step` tasks x `group_size` episodes each (GRPO's group:
    advantages are relative to the other episodes of the same task)."""

    steps: int = 4
    tasks_per_step: int = 2
    group_size: int = 4
    max_turns: int = 6  # policy turns per episode
    max_new_tokens: int = 64  # per policy turn
    temperature: float = 1.0  # sampling, and the temperature TRL computes log-probabilities at
    learning_rate: float = 1e-5
    beta: float = 0.04  # KL to the reference (the SFT model)
    well_formed_weight: float = 0.1
    violation_weight: float = -0.5
    seed: int = 0
    # float32: with mixed precision, accelerate wraps the model's forward in bf16 autocast and the
    # rollout engine's float32 caches then meet bf16 keys (and sampling would not be at the
    # precision of evaluation)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2: GRPO's advantages compare a task's episodes")
        if self.temperature <= 0:
            raise ValueError("temperature must be above 0: episodes are sampled, and TRL scores them at it")

    @property
    def weights(self) -> RewardWeights:
        return RewardWeights(well_formed=self.well_formed_weight, violation=self.violation_weight)


@dataclass
class Episode:
    """One rollout: the conversation and the token stream TRL trains on."""

    task_id: str
    conversation: SandboxConversation
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1: the policy wrote the token

    def add(self, ids: Sequence[int], by_policy: bool) -> None:
        self.completion_ids.extend(ids)
        self.env_mask.extend([int(by_policy)] * len(ids))


def render(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
           add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools or None, chat_template=CHAT_TEMPLATE,
                                         add_generation_prompt=add_generation_prompt, tokenize=False)


def run_episodes(tasks: Sequence[tuple[str, TaskSpec, int]], engine: BatchedEngine, max_turns: int,
                 temperature: float, generator: torch.Generator | None = None,
                 system_prompt: str = agent.SYSTEM_PROMPT) -> list[Episode]:
    """(task_id, spec, seed) episodes of the engine's model in the sandbox, in lockstep: each
    round every unfinished episode gets one sampled turn (one batched call). A turn cut at
    `max_new_tokens` is closed with the end marker as an environment token."""
    tokenizer = engine.tokenizer
    episodes = []
    for tid, spec, seed in tasks:
        conversation = SandboxConversation(spec, seed, system_prompt, tid)
        messages, tools = conversation.prompt()
        episodes.append(Episode(tid, conversation, prompt_ids(tokenizer, messages, tools)))
    for _ in range(max_turns):
        active = [e for e in episodes if not e.conversation.done]
        if not active:
            break
        turns = engine.generate_ids([e.prompt_ids + e.completion_ids for e in active], temperature, generator)
        for episode, ids in zip(active, turns):
            episode.add(ids, by_policy=True)
            if not ids or ids[-1] != engine.end_id:
                episode.add([engine.end_id], by_policy=False)
            text = engine.text_of(ids)
            conversation = episode.conversation
            before = len(conversation.messages)
            conversation.take(turn_message(text, parse_assistant_output(text), conversation.messages), max_turns)
            if conversation.done:
                continue
            messages, tools = conversation.prompt()
            suffix = environment_text(render(tokenizer, messages[:before + 1], tools, False),
                                      render(tokenizer, messages, tools, True))
            episode.add(tokenizer.encode(suffix, add_special_tokens=False), by_policy=False)
    return episodes


class RolloutLog:
    """What the rollouts of the current step did, drained by the logging callback."""

    def __init__(self, weights: RewardWeights) -> None:
        self.weights = weights
        self.pending: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.episodes = 0
        self.seconds = 0.0

    def record(self, episodes: Sequence[Episode], terms: Sequence[Mapping[str, float]], seconds: float) -> None:
        trials = [e.conversation for e in episodes]
        self.pending = summarize_episodes([c.spec["task_type"] for c in trials], terms,
                                          [c.turns for c in trials], self.weights)
        self.pending["rollouts_per_second"] = len(episodes) / seconds if seconds > 0 else 0.0
        self.pending["rollout_seconds"] = seconds
        self.pending["policy_tokens"] = sum(sum(e.env_mask) for e in episodes) / max(1, len(episodes))
        self.episodes += len(episodes)
        self.seconds += seconds

    def drain(self) -> dict[str, float]:
        out, self.pending = self.pending, {}
        return out


def make_rollout(specs: Mapping[str, TaskSpec], tokenizer: Any, config: RLConfig, log: RolloutLog):
    """TRL's `rollout_func`: the prompts are task ids (repeated `group_size` times in a row by
    TRL's sampler); one episode each, seeded by the step and the position (the simulated
    user's phrasing and the sampling)."""
    engines: dict[int, BatchedEngine] = {}

    def rollout(prompts: list[str], trainer: Any) -> dict[str, list]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        engine = engines.get(id(model))
        if engine is None:
            engine = engines[id(model)] = BatchedEngine.for_model(model, tokenizer, config.max_new_tokens)
        engine.reset()  # the weights changed since the last step
        step = trainer.state.global_step
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        tasks = [(tid, specs[tid], step * len(prompts) + i) for i, tid in enumerate(prompts)]
        was_training = model.training
        model.eval()
        started = time.perf_counter()
        try:
            episodes = run_episodes(tasks, engine, config.max_turns, config.temperature, generator)
        finally:
            model.train(was_training)
            engine.reset()  # free the prompt caches before the backward passes
        seconds = time.perf_counter() - started
        terms = [reward_terms(e.conversation.trial().to_dict()) for e in episodes]
        log.record(episodes, terms, seconds)
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": None,  # TRL recomputes them; only vLLM rollouts need the sampler's own
            "env_mask": [e.env_mask for e in episodes],
            **{f"{term}_term": [t[term] for t in terms] for term in REWARD_TERMS},
        }

    return rollout


def _reward_function(term: str):
    """A TRL reward function that returns the episode's precomputed `term` (rollout extra field)."""
    key = f"{term}_term"

    def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        return [float(v) for v in kwargs[key]]

    reward.__name__ = term  # TRL logs each function under its name: rewards/verified/mean, ...
    return reward


@dataclass
class RLResult:
    steps: int
    episodes: int
    seconds: float
    rollout_seconds: float
    peak_rss_mb: float
    device: str
    history: list[dict[str, float]]
    model_dir: Path | None = None

    def metrics(self) -> dict[str, float]:
        """Totals of the run (per-step metrics are `rl.*` at their step; these are `rl_run.*`)."""
        return {"rl_run.steps": self.steps, "rl_run.episodes": self.episodes, "rl_run.train_seconds": self.seconds,
                "rl_run.rollout_seconds": self.rollout_seconds, "rl_run.peak_rss_mb": self.peak_rss_mb,
                "rl_run.rollouts_per_second": self.episodes / self.rollout_seconds if self.rollout_seconds else 0.0}


def _metrics_callback(log: RolloutLog, on_log: OnLog | None):
    from transformers import TrainerCallback

    class RLMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            metrics = {f"rl.{k}": float(v) for k, v in log.drain().items()}
            # TRL's own: loss, kl, reward, reward_std, rewards/<term>/mean, completions/*, entropy, ...
            metrics |= {f"grpo.{k.replace('/', '.')}": float(v) for k, v in logs.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if "grpo.kl" in metrics:
                metrics["rl.kl"] = metrics["grpo.kl"]
            log.history.append({"step": state.global_step, **metrics})
            if on_log is not None:
                on_log(state.global_step, metrics)

    return RLMetrics()


def grpo_trainer(tasks: Mapping[str, TaskSpec], model_dir: ModelRef, config: RLConfig, scratch: str,
                 on_log: OnLog | None = None) -> tuple[Any, RolloutLog]:
    """TRL's GRPOTrainer over the sandbox: the policy from `model_dir` (full fine-tuning), the
    reference a frozen copy of it (KL weight `beta`)."""
    import os

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed
    from trl import GRPOConfig, GRPOTrainer

    if not tasks:
        raise ValueError("no training tasks")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental; we pin TRL
    device, bf16 = resolve_precision(config.precision)
    set_seed(config.seed)
    register_shared_prefix_attention()
    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation=SHARED_PREFIX_ATTENTION)
    log = RolloutLog(config.weights)
    args = GRPOConfig(
        output_dir=scratch, max_steps=config.steps, learning_rate=config.learning_rate, lr_scheduler_type="constant",
        # one episode per micro-batch (agent episodes are ~2,000 tokens; four at once peaked at 18 GB on
        # 2 CPU cores for SmolLM2-135M), accumulated over the step's tasks x group
        per_device_train_batch_size=1, gradient_accumulation_steps=config.tasks_per_step * config.group_size,
        num_generations=config.group_size, temperature=config.temperature, beta=config.beta,
        reward_weights=config.weights.as_list(),
        # advantages are rewards minus the group's mean, not divided by its spread: with TRL's
        # default ("group") a group whose episodes all failed would have its 0.1-weighted shaping
        # differences scaled up to the size of a success
        scale_rewards="none",
        logging_steps=1, save_strategy="no", report_to="none",
        disable_tqdm=True, seed=config.seed, data_seed=config.seed, bf16=bf16, dataloader_num_workers=0,
        activation_checkpointing=False,  # TRL's default; a 135M model's activations fit, recomputing them costs ~30 %
        use_cpu=device == "cpu",
    )
    trainer = GRPOTrainer(
        model=model, args=args, processing_class=tokenizer,
        reward_funcs=[_reward_function(term) for term in REWARD_TERMS],
        train_dataset=Dataset.from_list([{"prompt": tid} for tid in sorted(tasks)]),
        rollout_func=make_rollout(tasks, tokenizer, config, log),
        callbacks=[_metrics_callback(log, on_log)],
    )
    quiet_trainer(trainer)
    return trainer, log


def train_grpo(tasks: Mapping[str, TaskSpec], model_dir: ModelRef, out_dir: Path, config: RLConfig,
               on_log: OnLog | None = None, start_label: str | None = None) -> RLResult:
    """GRPO from `model_dir` on `tasks` ({task_id: spec}, the training split's); saves the
    policy to `out_dir` (a standalone model, as `train_sft` does). `start_label` names the
    starting model in the saved metadata (a registered version; default: `model_dir`)."""
    device, _ = resolve_precision(config.precision)
    with tempfile.TemporaryDirectory(prefix="flywheel-grpo-") as scratch:
        trainer, log = grpo_trainer(tasks, model_dir, config, scratch, on_log)
        with PeakMemory() as memory:
            started = time.perf_counter()
            output = trainer.train()
            seconds = time.perf_counter() - started
    if output.global_step < config.steps:
        # TRL's sampler drops an incomplete chunk of tasks: fewer tasks than tasks_per_step train nothing
        raise ValueError(f"GRPO ran {output.global_step} of {config.steps} steps: {len(tasks)} tasks for "
                         f"{config.tasks_per_step} per step")
    result = RLResult(steps=output.global_step, episodes=log.episodes, seconds=seconds, rollout_seconds=log.seconds,
                      peak_rss_mb=memory.peak_rss / 2**20, device=device, history=log.history)
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.set_attn_implementation("sdpa")  # the saved model loads anywhere without our attention
    summary = {k: v for k, v in asdict(result).items() if k not in ("history", "model_dir")}
    result.model_dir = save_merged(model, trainer.processing_class, out_dir,
                                   {"kind": "grpo", "base_model": start_label or str(model_dir),
                                    "config": asdict(config),
                                    "result": summary})
    return result
