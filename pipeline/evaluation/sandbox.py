"""Replay eval tasks in the simulator with a policy as the agent; pass^k over seeded trials.

One trial of a task spec: `replay(spec)` rebuilds the shop, the conversation opens with the
simulated agent's system prompt and the simulated user's opening message, then up to
`max_turns` times the policy produces one assistant message:
  * tool calls: each is executed against the env in order (`env.execute` never raises; a
    bad call gets an error text back, as in the logged data: a tool message's content is
    the result JSON or the error text) and the policy acts again;
  * text without tool calls: the simulated user (`SimulatedUser.reply`) answers when the
    text asks for a fact it holds (its email or order number); any other text ends the
    conversation (the agent's final answer);
  * a `parse_error`: the trial ends there (termination "parse_error").
Success is `check_success(spec, env.state())` on the final state, never the transcript.

Over k trials per task (seeds base_seed .. base_seed+k-1; the seed goes to the policy and
to the user's phrasing), pass^k is the share of tasks that succeed in ALL k trials (as in
tau-bench), pass@1 the mean success over all trials; `pass_hat` holds tau-bench's unbiased
pass^j = mean over tasks of C(c, j) / C(k, j) for j = 1..k (c successes of k), so
pass_hat[1] == pass@1 and pass_hat[k] == pass^k.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from math import comb
from random import Random
from typing import Any

from pipeline.evaluation.cases import task_id
from pipeline.evaluation.policy import Message, Policy, calls_of
from pipeline.simulator import agent, user
from pipeline.simulator.tasks import TaskSpec, failed_checks, replay

PolicyFactory = Callable[[TaskSpec], Policy]
Tools = list[dict[str, Any]]
DEFAULT_MAX_TURNS = 12

# What the simulated user recognises as a request for each fact it can give.
FACT_REQUESTS = {
    "email": re.compile(r"\be-?mail\b", re.I),
    "order_id": re.compile(r"\border\s*(?:number|no\b|id\b|#)|\border_id\b", re.I),
}
REQUEST_WORDS = re.compile(r"\?|\b(?:please|could|can|would|provide|share|tell|need|send|confirm|what)\b", re.I)
NO_SUCH_FACT = "I don't have that, sorry."


class SimulatedUser:
    """The task's user (facts from the spec's seeds); phrasing varies with the trial seed."""

    def __init__(self, spec: TaskSpec, seed: int) -> None:
        self.spec = spec
        self.facts = user.user_facts(spec)
        self.rng = Random(f"sandbox-user:{spec['user_seed']}:{seed}")

    def opening(self) -> str:
        return user.opening(self.spec, self.facts)

    def reply(self, assistant_text: str | None) -> str | None:
        """An answer to a request for facts, or None: the conversation is over."""
        wanted = requested_facts(assistant_text or "")
        if not wanted:
            return None
        known = [w for w in wanted if w in self.facts]
        return user.answer(known, self.facts, self.rng) if known else NO_SUCH_FACT


def requested_facts(text: str) -> list[str]:
    """Facts a message asks for: it names the fact and reads as a request (a question mark
    or a word such as please/could/provide/need)."""
    if not REQUEST_WORDS.search(text):
        return []
    return [fact for fact, pattern in FACT_REQUESTS.items() if pattern.search(text)]


@dataclass
class Trial:
    task_id: str
    task_type: str
    seed: int
    success: bool
    termination: str  # answered | max_turns | parse_error
    turns: int  # policy calls
    n_tool_calls: int
    n_failed_tool_calls: int
    failed_checks: list[dict[str, Any]]
    messages: list[Message] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SandboxConversation:
    """One trial in progress: the env, the simulated user, the transcript so far."""

    def __init__(self, spec: TaskSpec, seed: int, system_prompt: str, tid: str) -> None:
        self.spec, self.seed, self.tid = spec, seed, tid
        self.env = replay(spec)
        self.tools = self.env.tool_schemas()
        self.person = SimulatedUser(spec, seed)
        self.messages: list[Message] = [_message("system", system_prompt), _message("user", self.person.opening())]
        self.termination, self.turns, self.n_calls, self.n_failed = "max_turns", 0, 0, 0
        self.done = False

    def prompt(self) -> tuple[list[Message], Tools]:
        return [dict(m) for m in self.messages], self.tools

    def take(self, reply: Message, max_turns: int) -> None:
        """Apply one assistant message: run its tool calls, or let the user answer."""
        self.turns += 1
        calls = calls_of(reply)
        recorded = _message("assistant", reply.get("content"))
        recorded["tool_calls"] = [
            {"id": c["id"] or f"call_{self.n_calls + i + 1}", "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"]}}
            for i, c in enumerate(calls)
        ] or None
        if reply.get("parse_error"):
            recorded |= {"tool_calls": None, "parse_error": reply["parse_error"]}
            self.messages.append(recorded)
            self.termination, self.done = "parse_error", True
            return
        self.messages.append(recorded)
        if calls:
            for call in recorded["tool_calls"]:
                function = call["function"]
                result = self.env.execute(str(function["name"]), function["arguments"])
                self.n_calls += 1
                self.n_failed += not result.ok
                self.messages.append(_message("tool", result.text(), tool_call_id=call["id"]))
        else:
            answer = self.person.reply(reply.get("content"))
            if answer is None:
                self.termination, self.done = "answered", True
                return
            self.messages.append(_message("user", answer))
        self.done = self.turns >= max_turns

    def trial(self) -> Trial:
        failed = failed_checks(self.spec, self.env.state())
        return Trial(
            task_id=self.tid, task_type=self.spec["task_type"], seed=self.seed, success=not failed,
            termination=self.termination, turns=self.turns, n_tool_calls=self.n_calls,
            n_failed_tool_calls=self.n_failed, failed_checks=failed, messages=self.messages,
        )


def run_trial(spec: TaskSpec, policy: Policy, seed: int, max_turns: int = DEFAULT_MAX_TURNS,
              system_prompt: str = agent.SYSTEM_PROMPT, tid: str | None = None) -> Trial:
    """One conversation of `policy` on `spec` (see the module docstring)."""
    return run_trials([(tid or task_id(spec), spec, seed)], policy, max_turns, system_prompt)[0]


def run_trials(trials: Sequence[tuple[str, TaskSpec, int]], policy: Policy, max_turns: int = DEFAULT_MAX_TURNS,
               system_prompt: str = agent.SYSTEM_PROMPT,
               progress: Callable[[int, int], None] | None = None) -> list[Trial]:
    """Several (task_id, spec, seed) conversations of one policy in lockstep: each round, every
    unfinished conversation gets its next assistant message, in one `act_many` call when the
    policy has it (a batch for the engine). Same transcripts as one trial at a time."""
    running = [SandboxConversation(spec, seed, system_prompt, tid) for tid, spec, seed in trials]
    act_many = getattr(policy, "act_many", None)
    for _ in range(max_turns):
        active = [c for c in running if not c.done]
        if not active:
            break
        if act_many is not None:
            # one seed per call: group the conversations by theirs, unless the policy ignores
            # seeds (greedy decoding), which then gets every conversation in one call
            by_seed: dict[int, list[SandboxConversation]] = defaultdict(list)
            for c in active:
                by_seed[0 if getattr(policy, "greedy", False) else c.seed].append(c)
            for seed, group in by_seed.items():
                for c, reply in zip(group, act_many([c.prompt() for c in group], seed)):
                    c.take(reply, max_turns)
        else:
            for c in active:
                c.take(policy.act(*c.prompt(), c.seed), max_turns)
        if progress:
            progress(sum(c.done for c in running), len(running))
    return [c.trial() for c in running]


def _message(role: str, content: str | None, tool_call_id: str | None = None) -> Message:
    return {"role": role, "content": content, "tool_calls": None, "tool_call_id": tool_call_id}


def evaluate_sandbox(
    tasks: Mapping[str, TaskSpec] | Sequence[TaskSpec],
    policy: Policy | PolicyFactory,
    k: int = 3,
    base_seed: int = 0,
    max_turns: int = DEFAULT_MAX_TURNS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """k trials of every task; `policy` is one Policy for all tasks or a factory spec -> Policy.
    With one policy every trial runs in lockstep (batched when it has `act_many`) and
    `progress` counts finished trials; with a factory it counts finished tasks.
    Returns {"k", "overall", "by_task_type", "tasks", "trials"} (plain data; see `summarize_trials`)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    items = list(tasks.items()) if isinstance(tasks, Mapping) else [(task_id(s), s) for s in tasks]
    # a class with an `act` method is a factory (its instances are the policies)
    if isinstance(policy, Policy) and not isinstance(policy, type):
        runs = [(tid, spec, base_seed + j) for tid, spec in items for j in range(k)]
        return summarize_trials(run_trials(runs, policy, max_turns, progress=progress), k)
    trials = []
    for i, (tid, spec) in enumerate(items):
        acting = policy(spec)
        trials += run_trials([(tid, spec, base_seed + j) for j in range(k)], acting, max_turns)
        if progress:
            progress(i + 1, len(items))
    return summarize_trials(trials, k)


def pass_hat(successes: int, trials: int, j: int) -> float:
    """tau-bench's unbiased estimate of P(all j of j trials succeed) from c of n successes."""
    return comb(successes, j) / comb(trials, j)


def _segment(trials: Sequence[Trial], k: int) -> dict[str, Any]:
    by_task: dict[str, list[Trial]] = defaultdict(list)
    for t in trials:
        by_task[t.task_id].append(t)
    if not trials:
        return {"n_tasks": 0, "n_trials": 0, "pass_at_1": None, "pass_hat_k": None,
                "pass_hat": {}, "avg_turns": None, "terminations": {}}
    curve = {
        str(j): sum(pass_hat(sum(t.success for t in ts), len(ts), j) for ts in by_task.values()) / len(by_task)
        for j in range(1, k + 1)
    }
    return {
        "n_tasks": len(by_task),
        "n_trials": len(trials),
        "pass_at_1": sum(t.success for t in trials) / len(trials),
        "pass_hat_k": sum(all(t.success for t in ts) for ts in by_task.values()) / len(by_task),
        "pass_hat": curve,
        "avg_turns": sum(t.turns for t in trials) / len(trials),
        "terminations": dict(Counter(t.termination for t in trials)),
    }


def trial_outcomes(summary: Mapping[str, Any]) -> tuple[dict[str, dict[str, bool]], dict[str, str]]:
    """Per-unit outcomes of a `summarize_trials` result, for paired comparison and intervals:
    ({"pass_hat_k": {task_id: all k trials succeeded}, "pass_at_1": {"task_id#seed": success}},
     {unit: task_type})."""
    outcomes: dict[str, dict[str, bool]] = {"pass_hat_k": {}, "pass_at_1": {}}
    units: dict[str, str] = {}
    for tid, entry in summary["tasks"].items():
        outcomes["pass_hat_k"][tid] = bool(entry["passed_all"])
        units[tid] = entry["task_type"]
    for trial in summary["trials"]:
        unit = f"{trial['task_id']}#{trial['seed']}"
        outcomes["pass_at_1"][unit] = bool(trial["success"])
        units[unit] = trial["task_type"]
    return outcomes, units


def summarize_trials(trials: Sequence[Trial], k: int) -> dict[str, Any]:
    """Aggregate trials: overall and per task type, per task success lists, and every trial
    (with its transcript) as a dict."""
    groups: dict[str, list[Trial]] = defaultdict(list)
    tasks: dict[str, dict[str, Any]] = {}
    for t in trials:
        groups[t.task_type].append(t)
        entry = tasks.setdefault(t.task_id, {"task_type": t.task_type, "successes": []})
        entry["successes"].append(t.success)
    for entry in tasks.values():
        entry["passed_all"] = all(entry["successes"])
    return {
        "k": k,
        "overall": _segment(trials, k),
        "by_task_type": {tt: _segment(groups[tt], k) for tt in sorted(groups)},
        "tasks": tasks,
        "trials": [json.loads(json.dumps(t.to_dict(), default=repr)) for t in trials],
    }
