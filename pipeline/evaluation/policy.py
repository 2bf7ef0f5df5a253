"""Policies: whatever plays the agent, for next-action cases and in the sandbox.

A policy maps a conversation in TRL message form (the form of `marts.eval_cases.prompt`:
{role, content, tool_calls: [{id, type, function: {name, arguments}}], tool_call_id}, with
`arguments` a JSON object) plus the tools' OpenAI schemas to ONE assistant message:

    {"role": "assistant", "content": str | None,
     "tool_calls": [{"id", "type": "function", "function": {"name", "arguments": dict}}]}

or, when the output could not be parsed, the same with `"parse_error": "<why>"` (content
then holds the raw text and tool_calls is empty). A policy may add `"raw_text"`.

- `ModelPolicy(generate_fn)` wraps any `generate_fn(messages, tools, seed) -> (raw_text,
  parsed)`; `pipeline.learning.engine_policy` puts a model behind a generation engine (torch),
  whose `act_many` answers many conversations in one batched call.
- `ScriptedPolicy(spec)` is the simulator's scripted agent re-driven one step at a time: an
  oracle that knows the task spec (the user's facts and the plan), useful as an upper
  bound and to test the sandbox. `silent_wrong` injects the simulator's plausible wrong
  arguments (refund the whole order, pause a week too long, ...) with that probability.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from random import Random
from typing import Any, Protocol, runtime_checkable

from pipeline.simulator import agent, user
from pipeline.simulator.tasks import TaskSpec

Message = dict[str, Any]
Tools = list[dict[str, Any]]
GenerateFn = Callable[[list[Message], Tools, int], tuple[str, Mapping[str, Any] | None]]

# keys of a `parsed` dict that mark an unparseable output: the chat template's parser
# lists one line per unreadable call under `parse_errors`; other generators may say
# `parse_error` or `error`
PARSE_ERROR_KEYS = ("parse_errors", "parse_error", "error")


@runtime_checkable
class Policy(Protocol):
    def act(self, messages: list[Message], tools: Tools, seed: int) -> Message:
        """The next assistant message for `messages` (never mutate `messages`)."""
        ...


# -- assistant messages ------------------------------------------------------------------


def assistant_message(
    content: str | None = None,
    calls: Sequence[Mapping[str, Any]] = (),
    messages: Sequence[Message] = (),
    parse_error: str | None = None,
    raw_text: str | None = None,
) -> Message:
    """An assistant message; `calls` are {name, arguments} (ids continue those in `messages`)."""
    first = next_call_number(messages)
    message: Message = {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {"id": f"call_{first + i}", "type": "function",
             "function": {"name": c.get("name"), "arguments": c.get("arguments")}}
            for i, c in enumerate(calls)
        ],
    }
    if parse_error is not None:
        message["parse_error"] = parse_error
    if raw_text is not None:
        message["raw_text"] = raw_text
    return message


def next_call_number(messages: Sequence[Message]) -> int:
    """1 + the number of tool calls so far, for ids "call_<n>" like the logged data."""
    return 1 + sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")


def calls_of(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The message's tool calls as [{id, name, arguments}]; accepts the OpenAI/TRL form
    ({function: {name, arguments}}) and the flat form ({name, arguments}). JSON-string
    arguments are decoded; a string that is not JSON stays a string (an invalid call)."""
    out = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call.get("function"), Mapping) else call
        arguments = function.get("arguments")
        if isinstance(arguments, (str, bytes)):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                pass
        out.append({"id": call.get("id"), "name": function.get("name"), "arguments": arguments})
    return out


# -- model policy ------------------------------------------------------------------------


class ModelPolicy:
    """A policy around `generate_fn(messages, tools, seed) -> (raw_text, parsed)` where
    parsed = {"content": str | None, "tool_calls": [{"name", "arguments"}], ...} and a non-empty
    `parse_errors` list (or a truthy `parse_error` / `error`), or parsed None, marks output that
    could not be parsed: one unreadable call (an unclosed `<tool_call>`, say) makes the whole
    turn invalid, even next to calls that parsed."""

    def __init__(self, generate_fn: GenerateFn) -> None:
        self.generate_fn = generate_fn

    def act(self, messages: list[Message], tools: Tools, seed: int) -> Message:
        raw_text, parsed = self.generate_fn(list(messages), tools, seed)
        return turn_message(raw_text, parsed, messages)


def turn_message(raw_text: str, parsed: Mapping[str, Any] | None, messages: Sequence[Message]) -> Message:
    """The assistant message for a generated turn and its parse (see `ModelPolicy`)."""
    error = _parse_error(parsed)
    if error is not None:
        return assistant_message(raw_text, (), messages, parse_error=error, raw_text=raw_text)
    assert parsed is not None
    calls = calls_of({"tool_calls": parsed.get("tool_calls") or []})
    if any(not isinstance(c["name"], str) or not c["name"] for c in calls):
        return assistant_message(raw_text, (), messages, parse_error="tool call without a name", raw_text=raw_text)
    return assistant_message(parsed.get("content"), calls, messages, raw_text=raw_text)


def _parse_error(parsed: Mapping[str, Any] | None) -> str | None:
    if not isinstance(parsed, Mapping):
        return "no parsed output"
    for key in PARSE_ERROR_KEYS:
        value = parsed.get(key)
        if isinstance(value, (list, tuple)):
            value = "; ".join(str(v) for v in value)
        if value:
            return value if isinstance(value, str) else "unparseable output"
    return None


# -- scripted (oracle) policy ------------------------------------------------------------


class ScriptedPolicy:
    """The simulator's scripted agent, one decision per `act`, for one task spec.

    Its state is read back from the messages: facts it still has to ask for (before any
    assistant turn), the plan's tool calls that already succeeded (a tool result that is a
    JSON object; an error text means "retry"), and the results it has seen. When the plan is
    done it gives the agent's final answer. With probability `silent_wrong` per action (seeded
    by the seed and the conversation length) it sends the plausible wrong arguments.
    """

    def __init__(self, spec: TaskSpec, silent_wrong: float = 0.0) -> None:
        self.spec = spec
        self.silent_wrong = silent_wrong
        self.facts = user.user_facts(spec)

    def act(self, messages: list[Message], tools: Tools, seed: int) -> Message:
        task = self.spec["task_type"]
        if not any(m.get("role") == "assistant" for m in messages):
            missing = [n for n in agent.NEEDS[task] if n not in user.mentioned(self.spec)]
            if missing:
                asked = " and ".join(agent.ASK[n] for n in missing)
                return assistant_message(f"Happy to help. Could you tell me {asked}?", (), messages)
        memory: dict[str, Any] = {**self.facts, **self.spec["params"], "task_type": task}
        names = {c["id"]: c["name"] for m in messages if m.get("role") == "assistant" for c in calls_of(m)}
        done: set[str] = set()
        for m in messages:
            if m.get("role") != "tool":
                continue
            try:
                result = json.loads(m.get("content") or "")
            except ValueError:
                continue  # an error text: that call failed
            if isinstance(result, dict):
                memory |= result
                done.add(names.get(m.get("tool_call_id"), ""))
        rng = Random(f"scripted:{self.spec['user_seed']}:{seed}:{len(messages)}")
        for intent in agent.PLANS[task]:
            args = intent.args(memory)
            if args is None or intent.tool in done:
                continue
            if intent.silent_wrong and rng.random() < self.silent_wrong:
                args = intent.silent_wrong(args, memory)
            return assistant_message(None, [{"name": intent.tool, "arguments": args}], messages)
        return assistant_message(agent.FINAL_ANSWERS[task](memory), (), messages)


def scripted_factory(silent_wrong: float = 0.0) -> Callable[[TaskSpec], ScriptedPolicy]:
    """A per-task policy factory for `sandbox.evaluate_sandbox`."""
    return lambda spec: ScriptedPolicy(spec, silent_wrong)
