"""RL in the sandbox (pipeline.core.rl, pipeline.learning.rl) on a tiny randomly initialised
model: episodes, rewards from the final state, the loss mask over environment tokens, and
one GRPO step with TRL end to end."""

from __future__ import annotations

import json
from random import Random

import pytest
import torch

from pipeline.core.rl import RewardWeights, environment_text, reward_terms, summarize_episodes
from pipeline.core.training.chat_template import END_OF_TURN
from pipeline.evaluation.cases import task_id
from pipeline.evaluation.policy import ScriptedPolicy
from pipeline.evaluation.sandbox import SandboxConversation, run_trial
from pipeline.learning.generate import SHARED_PREFIX_ATTENTION, BatchedEngine, register_shared_prefix_attention
from pipeline.learning.rl import RLConfig, grpo_trainer, render, run_episodes, train_grpo
from pipeline.simulator import agent
from pipeline.simulator.tasks import TaskMix, check_success, sample_task


def _tasks(n: int, seed: int = 3) -> dict[str, dict]:
    rng = Random(seed)
    specs = [sample_task(rng, 5, TaskMix(), 11) for _ in range(n)]
    return {task_id(s): s for s in specs}


# -- rewards -------------------------------------------------------------------------------


@pytest.mark.parametrize("silent_wrong", [0.0, 1.0])
def test_the_verified_reward_is_the_success_checks_on_the_final_state(silent_wrong):
    """The scripted agent succeeds; with every argument plausibly wrong it fails on the state
    (and changes what it must not: a violation), whatever the transcript says."""
    outcomes = []
    for tid, spec in _tasks(8).items():
        trial = run_trial(spec, ScriptedPolicy(spec, silent_wrong), seed=0, tid=tid)
        replayed = SandboxConversation(spec, 0, agent.SYSTEM_PROMPT, tid)
        for message in trial.messages[2:]:  # apply the same turns to a fresh sandbox
            if message["role"] == "assistant":
                replayed.take({**message, "tool_calls": message["tool_calls"] or []}, max_turns=99)
        terms = reward_terms(trial.to_dict())
        assert terms["verified"] == float(check_success(spec, replayed.env.state()))
        outcomes.append(terms)
    verified = [t["verified"] for t in outcomes]
    if silent_wrong == 0.0:
        assert all(verified) and not any(t["violation"] for t in outcomes)
    else:
        assert not all(verified)


def test_shaping_terms_count_accepted_calls_and_violations():
    base = {"success": False, "termination": "answered", "failed_checks": [], "n_tool_calls": 0,
            "n_failed_tool_calls": 0}
    call = {"role": "assistant", "tool_calls": [{"id": "c1"}]}
    text = {"role": "assistant", "content": "Done.", "tool_calls": None}
    unparsed = {"role": "assistant", "content": "<tool_call>{", "tool_calls": None, "parse_error": "unclosed"}
    assert reward_terms({**base, "messages": [call, call, text], "n_tool_calls": 2, "n_failed_tool_calls": 1}) == {
        "verified": 0.0, "well_formed": 1 / 2, "violation": 0.0}
    assert reward_terms({**base, "messages": [call, unparsed], "n_tool_calls": 1})["well_formed"] == 1 / 2
    assert reward_terms({**base, "messages": [text]})["well_formed"] == 0.0  # no call: nothing to reward
    violated = {**base, "messages": [call, text], "success": True, "n_tool_calls": 1,
                "failed_checks": [{"op": "unchanged_except", "allowed": []}]}
    assert reward_terms(violated) == {"verified": 1.0, "well_formed": 1.0, "violation": 1.0}
    summary = summarize_episodes(["refund", "refund", "order_status"],
                                 [{"verified": 1.0, "well_formed": 1.0, "violation": 0.0},
                                  {"verified": 0.0, "well_formed": 0.5, "violation": 1.0},
                                  {"verified": 1.0, "well_formed": 1.0, "violation": 0.0}], [2, 4, 3],
                                 RewardWeights(well_formed=0.1, violation=-0.5))
    assert summary["reward.verified.refund"] == 0.5 and summary["reward.verified.order_status"] == 1.0
    assert summary["reward.shaped"] == pytest.approx(0.1 * 2.5 / 3 - 0.5 / 3)
    assert summary["reward.total"] == pytest.approx(2 / 3 + summary["reward.shaped"])
    assert summary["episode_turns"] == 3


def test_environment_text_is_what_follows_the_assistants_end_marker():
    before = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
    after = before + "<|im_start|>user\nmy email<|im_end|>\n<|im_start|>assistant\n"
    assert environment_text(before, after) == "\n<|im_start|>user\nmy email<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="re-renders"):
        environment_text(before, before.replace("Hello", "Hi") + "<|im_start|>assistant\n")


# -- episodes ------------------------------------------------------------------------------


class ScriptedEngine:
    """The scripted agent behind the engine interface (token ids in, token ids out), so an
    episode can be driven to success: it keeps a mirror of each conversation (found by its
    opening tokens) and answers with the tokens the template renders for the scripted turn."""

    def __init__(self, tokenizer, tasks: dict[str, dict]) -> None:
        self.tokenizer, self.end_id = tokenizer, tokenizer.convert_tokens_to_ids(END_OF_TURN)
        self.mirrors = []
        for tid, spec in tasks.items():
            mirror = SandboxConversation(spec, 0, agent.SYSTEM_PROMPT, tid)
            messages, tools = mirror.prompt()
            opening = tokenizer.encode(render(tokenizer, messages, tools, True), add_special_tokens=False)
            self.mirrors.append((opening, mirror, ScriptedPolicy(spec)))

    def text_of(self, ids):
        return self.tokenizer.decode(list(ids), skip_special_tokens=False).split(END_OF_TURN, 1)[0]

    def generate_ids(self, prompts, temperature=0.0, generator=None):
        out = []
        for ids in prompts:
            opening, mirror, policy = next(m for m in self.mirrors if ids[:len(m[0])] == m[0])
            messages, tools = mirror.prompt()
            reply = policy.act(messages, tools, 0)
            rendered = render(self.tokenizer, messages + [reply], tools, False)
            turn = rendered[len(render(self.tokenizer, messages, tools, True)):]
            turn = turn[:turn.index(END_OF_TURN) + len(END_OF_TURN)]
            mirror.take(reply, max_turns=99)
            out.append(self.tokenizer.encode(turn, add_special_tokens=False))
        return out


def test_an_episode_is_the_policys_tokens_and_the_environments_masked_tokens(tokenizer):
    tasks = _tasks(4)
    engine = ScriptedEngine(tokenizer, tasks)
    episodes = run_episodes([(tid, spec, 0) for tid, spec in tasks.items()], engine, max_turns=12, temperature=0.0)
    for episode in episodes:
        conversation = episode.conversation
        assert check_success(conversation.spec, conversation.env.state())
        assert reward_terms(conversation.trial().to_dict())["verified"] == 1.0
        # the stream is exactly the final conversation in the template, token for token
        messages, tools = conversation.prompt()
        full = render(tokenizer, messages, tools, False)
        streamed = tokenizer.decode(episode.prompt_ids + episode.completion_ids, skip_special_tokens=False)
        assert full.startswith(streamed) and full[len(streamed):].strip() == ""
        # policy tokens: the assistant turns; environment tokens: tool results and user replies
        assert len(episode.env_mask) == len(episode.completion_ids)
        policy_text = tokenizer.decode([t for t, m in zip(episode.completion_ids, episode.env_mask) if m],
                                       skip_special_tokens=False)
        environment = tokenizer.decode([t for t, m in zip(episode.completion_ids, episode.env_mask) if not m],
                                       skip_special_tokens=False)
        for message in messages[2:]:
            if message["role"] == "assistant":
                for call in message["tool_calls"] or []:
                    assert call["function"]["name"] in policy_text
                    assert call["function"]["name"] not in environment.replace(
                        json.dumps(call["function"]["arguments"]), "")
            else:
                assert message["content"] in environment and message["content"] not in policy_text
        assert "<|im_start|>tool" in environment and "<|im_start|>tool" not in policy_text


def test_sampled_episodes_with_the_model_in_memory(tiny_dir, tokenizer):
    register_shared_prefix_attention()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_dir, attn_implementation=SHARED_PREFIX_ATTENTION).eval()
    engine = BatchedEngine.for_model(model, tokenizer, max_new_tokens=6)
    tasks = [(tid, spec, seed) for tid, spec in _tasks(2).items() for seed in range(3)]
    first = run_episodes(tasks, engine, max_turns=2, temperature=1.0, generator=torch.Generator().manual_seed(0))
    engine.reset()
    again = run_episodes(tasks, engine, max_turns=2, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert [e.completion_ids for e in first] == [e.completion_ids for e in again]  # seeded
    assert len({tuple(e.completion_ids) for e in first}) > 1  # sampled, not greedy
    for episode in first:
        assert sum(episode.env_mask) <= 2 * 6 and len(episode.env_mask) == len(episode.completion_ids)
        assert reward_terms(episode.conversation.trial().to_dict())["verified"] == float(
            check_success(episode.conversation.spec, episode.conversation.env.state()))


# -- GRPO with TRL ---------------------------------------------------------------------------


def test_environment_tokens_carry_no_loss(tiny_dir, tmp_path):
    """TRL's loss on a generated batch (advantages set to +-1 so that every policy token has a
    gradient): the final hidden state at a position that predicts an environment token gets
    exactly zero gradient, one that predicts the policy's own token does not. (TRL's fused LM
    head reads the final norm's output directly, so that is where the gradient is caught; at the
    last layer a position's state feeds only its own prediction.)"""
    tasks = _tasks(2)
    config = RLConfig(steps=1, tasks_per_step=1, group_size=2, max_turns=3, max_new_tokens=6, beta=0.0)
    trainer, _ = grpo_trainer(tasks, tiny_dir, config, str(tmp_path))
    model = trainer.model
    model.train()
    batch = trainer._generate_and_score_completions([{"prompt": next(iter(tasks))}] * 2)
    assert "tool_mask" in batch and (batch["tool_mask"] == 0).any() and (batch["tool_mask"] == 1).any()
    batch["advantages"] = torch.tensor([1.0, -1.0])
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test bypasses
    captured = {}

    def keep_hidden(module, inputs, output):
        output.retain_grad()
        captured["hidden"] = output

    handle = model.model.norm.register_forward_hook(keep_hidden)
    try:
        trainer.compute_loss(model, batch).backward()
    finally:
        handle.remove()
    grad = captured["hidden"].grad  # (rows, prompt + completion, hidden); position t predicts token t + 1
    per_position = grad.abs().sum(-1)[:, -batch["completion_ids"].shape[1] - 1:-1]
    live = (batch["completion_mask"] * batch["tool_mask"]).bool()
    assert (per_position[~live] == 0).all()
    assert (per_position[live] > 0).all()


def test_one_grpo_step_in_the_sandbox_end_to_end(tiny_dir, tmp_path):
    tasks = _tasks(3)
    logged = []
    config = RLConfig(steps=1, tasks_per_step=1, group_size=2, max_turns=2, max_new_tokens=6)
    result = train_grpo(tasks, tiny_dir, tmp_path / "rl", config, on_log=lambda step, m: logged.append((step, m)))
    assert result.steps == 1 and result.episodes == 2
    (step, metrics), = logged
    assert step == 1
    for key in ("rl.reward.verified", "rl.reward.shaped", "rl.reward.well_formed", "rl.reward.violation",
                "rl.kl", "rl.episode_turns", "rl.rollouts_per_second", "grpo.loss",
                "grpo.rewards.verified.mean"):
        assert key in metrics, key
    assert any(k.startswith("rl.reward.verified.") for k in metrics)
    from transformers import AutoModelForCausalLM

    saved = json.loads((tmp_path / "rl" / "flywheel_training.json").read_text())
    assert saved["kind"] == "grpo" and saved["config"]["group_size"] == 2
    AutoModelForCausalLM.from_pretrained(tmp_path / "rl")  # loads standalone, default attention


def test_the_rollout_bench_runs_both_arms_on_the_same_episodes(tiny_dir):
    from pipeline.benchmarks.rollouts import format_rollout_bench, run_rollout_bench

    result = run_rollout_bench(tiny_dir, n_tasks=2, group_size=2, max_turns=2, max_new_tokens=4, log=lambda m: None)
    assert result["identical"] == result["total"] == 4
    assert set(result["arms"]) == {"batched (ours)", "transformers generate"}
    assert all(arm["episodes_per_second"] > 0 for arm in result["arms"].values())
    assert "identical episodes 4/4" in format_rollout_bench(result)


def test_a_config_grpo_cannot_learn_from_is_refused(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match="group_size"):
        RLConfig(group_size=1)
    with pytest.raises(ValueError, match="temperature"):
        RLConfig(temperature=0.0)
    # fewer tasks than a step takes: TRL's sampler would run no step at all
    with pytest.raises(ValueError, match="ran 0 of 1 steps: 1 tasks for 2 per step"):
        train_grpo(_tasks(1), tiny_dir, tmp_path / "rl", RLConfig(steps=1, tasks_per_step=2, group_size=2,
                                                                  max_turns=1, max_new_tokens=2))
    assert not (tmp_path / "rl").exists()
