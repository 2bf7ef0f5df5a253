"""A judge's rubric: what a separate model is asked about a trajectory nothing verified, and
how its answer is read. Pure: messages in, a request's messages out; text in, a verdict out.

The rubric is versioned (RUBRIC_VERSION): a label carries the rubric and the judge model
that produced it, so labels of two rubrics are never mixed up. Three questions, each yes or
no: did the agent achieve the user's goal, did it follow the policy in its system prompt,
did it call tools correctly (the right tool, well-formed arguments, results used). A
trajectory passes when all three are yes.

Judge labels rank below verified outcomes and human feedback; how far they agree with
verified outcomes (Cohen's kappa on trajectories that have both) is measured in curation,
so a weak judge shows up as weak instead of quietly labelling data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RUBRIC_VERSION = "rubric-v1"
CRITERIA: tuple[str, ...] = ("goal_achieved", "policy_followed", "tool_use_correct")
MAX_TRANSCRIPT_CHARS = 12_000  # the judge sees the start and the end of longer transcripts
MAX_TURN_CHARS = 1_500

SYSTEM_PROMPT = f"""You grade one conversation between a user and a tool-using AI agent.
Answer three questions about the agent, each true or false:
- goal_achieved: did the agent achieve what the user asked for?
- policy_followed: did the agent follow the rules in its system prompt?
- tool_use_correct: did the agent call the right tools with well-formed arguments and use their results?
Reply with one JSON object and nothing else, for example:
{{"goal_achieved": true, "policy_followed": true, "tool_use_correct": false}}
(rubric {RUBRIC_VERSION})"""


@dataclass(frozen=True)
class Verdict:
    goal_achieved: bool
    policy_followed: bool
    tool_use_correct: bool

    @property
    def passed(self) -> bool:
        return self.goal_achieved and self.policy_followed and self.tool_use_correct

    def as_dict(self) -> dict[str, bool]:
        return {name: getattr(self, name) for name in CRITERIA}


def judge_request(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The chat messages to send the judge for one trajectory (OpenAI-shaped `messages`,
    as the marts and int_messages hold them)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Conversation:\n" + render_transcript(messages)}]


def render_transcript(messages: Sequence[Mapping[str, Any]]) -> str:
    """One line block per turn: role, text, tool calls as name(arguments); long turns and
    long transcripts cut in the middle (the goal is stated early, the outcome late)."""
    blocks = []
    for message in messages:
        role = str(message.get("role", "?"))
        text = str(message.get("content") or "")
        calls = [_call_text(call) for call in message.get("tool_calls") or []]
        body = "\n".join(part for part in [text, *calls] if part)
        blocks.append(f"[{role}] {_middle_cut(body, MAX_TURN_CHARS)}")
    return _middle_cut("\n".join(blocks), MAX_TRANSCRIPT_CHARS)


def _call_text(call: Mapping[str, Any]) -> str:
    function = call.get("function") or call
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return f"-> {function.get('name')}({arguments})"


def _middle_cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 20) // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
_TRUE, _FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


def parse_verdict(text: str) -> Verdict | None:
    """The first JSON object in the judge's reply that answers all three questions with a
    boolean (or yes/no), else None: a reply that cannot be read is no label at all."""
    for match in _OBJECT.finditer(text or ""):
        try:
            answer = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(answer, dict):
            values = [_boolean(answer.get(name)) for name in CRITERIA]
            if all(v is not None for v in values):
                return Verdict(*values)  # type: ignore[arg-type]
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None
