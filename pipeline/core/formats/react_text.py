"""`react_text` landing format: plain-text ReAct transcripts, several per file.

    === TRAJECTORY <id> ===
    session_id: "s-1"                      header lines, `key: value`
    User: Where is my order O-1?           turns
    Thought: I should look it up.
    Action: lookup_order[{"order_id": "O-1"}]
    Observation: {"status": "shipped"}
    Final Answer: It has shipped.
    Reward: 1.0                            ends the transcript

Header keys are the record's field names (session_id, user_id, tenant, agent_name,
agent_version, model, task_type, goal, started_at, ended_at, tools, request_params,
task_spec, success, verified_by, termination, feedback, consent); a value is JSON, or bare
text where it is not valid JSON (`model: gpt-4o`). Other header keys go to `extra`.

Turns → steps:
- `System:` / `User:` — a system / user step.
- `Thought:` — starts an assistant step, as its reasoning.
- `Assistant:` / `Final Answer:` — the assistant's text: on the current assistant step if it
  has no text or tool calls yet, else a new one.
- `Action: name[{json}]` — a tool call on the current assistant step. ReAct has no call ids:
  they are synthesised as `call_<n>`, n counting from 1 in each transcript.
- `Observation:` / `Error:` — a tool step (result text / error text) answering the oldest
  call not yet answered.
A line that is not a turn continues the previous turn's text (joined by a newline); blank
lines are ignored. Text that is multi-line, has outer whitespace or starts with `"` is
written as a JSON string, and turn text that is a JSON string is decoded.

Records: each `=== TRAJECTORY` line starts one and its `Reward:` line ends it. A transcript
cut off before its Reward line is quarantined (`missing_required_field`), and so is text
outside a transcript (all of it up to the next `=== TRAJECTORY` line is one record). A
record's line is its first line.

Round trip keeps every field except: tool-call ids (re-synthesised; tool steps re-linked in
call order), latency_ms and token counts, a tool step's content when it also has an error
(the error is written), `system_prompt` unless it is a leading system step's content, null
text (written as empty), and two assistant steps in a row merge when the second has no Thought.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

from pipeline.core.formats.checks import MISSING, leading_system_prompt, parse_arguments, require_id
from pipeline.core.formats.fields import FIELD_KINDS, At, assemble, field_values
from pipeline.core.formats.guard import Record, RecordError, Source, parse_record
from pipeline.core.formats.json_lines import check_size, decode_utf8, is_blank, iter_lines, strict_json
from pipeline.core.record import Step, ToolCall, Trajectory

FORMAT = "react_text"
_SEPARATOR, _REWARD = b"=== TRAJECTORY", b"Reward:"
_FIRST_LINE = re.compile(r"=== TRAJECTORY(.*)===\Z")
_TURN = re.compile(
    r"(System|User|Thought|Assistant|Final Answer|Action|Observation|Error|Reward):(.*)\Z", re.S
)
_ACTION = re.compile(r"\s*([^\[\]]+?)\s*\[(.*)\]\s*\Z", re.S)
_HEADERS = tuple(name for name in FIELD_KINDS if name not in ("system_prompt", "reward"))


@dataclass
class _Chunk:
    """One record's raw lines: a transcript, or a run of text outside any transcript. Lines
    past the size limit are counted but not kept."""

    line: int
    transcript: bool
    lines: list[tuple[int, bytes]] = field(default_factory=list)
    size: int = 0
    complete: bool = False  # ended by its Reward line

    def add(self, number: int, raw: bytes, max_bytes: int) -> None:
        self.size += len(raw) + 1
        if self.size <= max_bytes:
            self.lines.append((number, raw))


class _Turn(NamedTuple):
    keyword: str
    text: str
    line: int


def parse(data: bytes | IO[bytes], src: Source) -> Iterator[Record]:
    for chunk in _chunks(data, src.max_record_bytes):
        raw = b"\n".join(line for _, line in chunk.lines)
        yield parse_record(src, chunk.line, raw, _trajectory, chunk, src)


def export(trajectories: Iterable[Trajectory]) -> bytes:
    return "\n".join(_transcript(t) for t in trajectories).encode()


# --- parse ------------------------------------------------------------------------------------


def _chunks(data: bytes | IO[bytes], max_bytes: int) -> Iterator[_Chunk]:
    chunk: _Chunk | None = None
    for number, raw in iter_lines(data):
        if raw.startswith(_SEPARATOR):
            if chunk is not None:
                yield chunk
            chunk = _Chunk(number, transcript=True)
        elif is_blank(raw):
            continue
        elif chunk is None:
            chunk = _Chunk(number, transcript=False)
        chunk.add(number, raw, max_bytes)
        if chunk.transcript and raw.startswith(_REWARD):
            chunk.complete = True
            yield chunk
            chunk = None
    if chunk is not None:
        yield chunk


def _trajectory(chunk: _Chunk, src: Source) -> Trajectory:
    if not chunk.transcript:
        raise RecordError(
            "missing_required_field",
            "text outside a transcript (no '=== TRAJECTORY <id> ===' line before it)",
        )
    check_size(chunk.size, src.max_record_bytes)
    if not chunk.complete:
        raise RecordError("missing_required_field", "transcript has no Reward line (truncated?)")
    (first_number, first), *body = [(n, decode_utf8(raw, f"line {n}")) for n, raw in chunk.lines]
    match = _FIRST_LINE.match(first.strip())
    if not match:
        raise RecordError(
            "missing_required_field",
            f"line {first_number}: expected '=== TRAJECTORY <id> ===', got {first[:80]!r}",
        )
    trajectory_id = require_id(match[1].strip(), f"line {first_number} trajectory id")
    headers, turns = _tokens(body)
    *turns, reward = turns  # the chunk ends with its Reward line
    steps = _steps(turns)
    fields = {name: headers.pop(name, At(MISSING, f"header {name}")) for name in _HEADERS}
    fields["reward"] = At(_json_or_text(reward.text.strip()), f"line {reward.line} Reward")
    fields["system_prompt"] = At(leading_system_prompt(steps), "System turn")
    extra = {key: at.value for key, at in headers.items()}
    return assemble(trajectory_id, steps, fields, extra, src.provenance(FORMAT, first_number))


def _tokens(body: list[tuple[int, str]]) -> tuple[dict[str, At], list[_Turn]]:
    """Header values (by key) and turns (continuation lines folded in)."""
    headers: dict[str, At] = {}
    turns: list[_Turn] = []
    for number, text in body:
        match = _TURN.match(text)
        if match:
            turns.append(_Turn(match[1], match[2].removeprefix(" "), number))
        elif turns:
            turns[-1] = turns[-1]._replace(text=f"{turns[-1].text}\n{text}")
        elif ":" in text:
            key, _, value = text.partition(":")
            headers[key.strip()] = At(
                _json_or_text(value.strip()), f"line {number} header {key.strip()}"
            )
        else:
            raise RecordError(
                "wrong_type",
                f"line {number}: expected a 'key: value' header or a turn (User:, Thought:, ...),"
                f" got {text[:60]!r}",
            )
    return headers, turns


def _steps(turns: list[_Turn]) -> list[Step]:
    steps: list[Step] = []
    unanswered: deque[str] = deque()
    call_numbers = itertools.count(1)
    for turn in turns:
        current = steps[-1] if steps and steps[-1].role == "assistant" else None
        text = _decode_text(turn.text)
        if turn.keyword in ("System", "User"):
            steps.append(Step(len(steps), turn.keyword.lower(), content=text))
        elif turn.keyword == "Thought":
            steps.append(Step(len(steps), "assistant", reasoning=text))
        elif turn.keyword in ("Assistant", "Final Answer"):
            if current and current.content is None and not current.tool_calls:
                current.content = text
            else:
                steps.append(Step(len(steps), "assistant", content=text))
        elif turn.keyword == "Action":
            call = _action(turn, f"call_{next(call_numbers)}")
            unanswered.append(call.id)
            if current:
                current.tool_calls.append(call)
            else:
                steps.append(Step(len(steps), "assistant", tool_calls=[call]))
        else:  # Observation / Error
            failed = turn.keyword == "Error"
            steps.append(
                Step(
                    len(steps),
                    "tool",
                    content=None if failed else text,
                    error=text if failed else None,
                    tool_call_id=unanswered.popleft() if unanswered else None,
                )
            )
    return steps


def _action(turn: _Turn, call_id: str) -> ToolCall:
    match = _ACTION.match(turn.text)
    if not match:
        raise RecordError(
            "invalid_tool_arguments",
            f"line {turn.line}: Action must be tool_name[{{json arguments}}], got {turn.text[:80]!r}",
        )
    name = match[1]
    return ToolCall(
        call_id, name, parse_arguments(match[2], f"line {turn.line} Action {name} arguments")
    )


def _json_or_text(text: str) -> Any:
    try:
        return strict_json(text)
    except ValueError:
        return text


def _decode_text(text: str) -> str:
    if text.startswith('"'):
        value = _json_or_text(text)
        return value if isinstance(value, str) else text
    return text


# --- export -----------------------------------------------------------------------------------


def _transcript(t: Trajectory) -> str:
    values = field_values(t)
    lines = [f"=== TRAJECTORY {t.trajectory_id} ==="]
    lines += [f"{key}: {_json(values[key])}" for key in _HEADERS if key in values]
    lines += [f"{key}: {_json(value)}" for key, value in t.extra.items()]
    for step in t.steps:
        lines += _turns(step, last=step is t.steps[-1])
    lines.append(f"Reward: {_json(t.outcome.reward)}")
    return "\n".join(lines) + "\n"


def _turns(step: Step, last: bool) -> list[str]:
    if step.role in ("system", "user"):
        return [f"{step.role.capitalize()}: {_encode_text(step.content or '')}"]
    if step.role == "tool":
        if step.error is not None:
            return [f"Error: {_encode_text(step.error)}"]
        return [f"Observation: {_encode_text(step.content or '')}"]
    lines = [] if step.reasoning is None else [f"Thought: {_encode_text(step.reasoning)}"]
    if step.content is not None:
        lines.append(f"{'Final Answer' if last else 'Assistant'}: {_encode_text(step.content)}")
    lines += [f"Action: {c.name}[{_json(c.arguments)}]" for c in step.tool_calls]
    return lines or ["Assistant: "]


def _encode_text(text: str) -> str:
    plain = text == text.strip() and "\n" not in text and "\r" not in text and not text.startswith('"')
    return text if plain else _json(text)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
