"""ReAct inside chat: structure steps whose tool use was logged as text.

Agent-tuning corpora (AgentInstruct, ReAct/LangChain agents) log chat messages where the
assistant writes `Thought: ...` / `Action: search[Apple Inc]` and the environment answers in a
user message `Observation: ...`. Read as chat, those are steps without tool calls;
`structure_react_steps` turns them into reasoning, tool calls and tool results, keeping the
original text in `raw_text` so nothing is lost.

Only an assistant step with no tool calls whose text has a marker at a line start (`Thought:`,
`Action:`, `Action Input:`, `Final Answer:`, each optionally numbered as in the ReAct paper,
`Thought 2:`) is restructured. Its text splits into sections at those markers:
- `Thought:` sections, and text before the first marker, are the step's reasoning (after any
  reasoning the step already had), joined by newlines.
- An `Action:` section is one call, written as `name[args]`, `name(args)`, a bare `name` (no
  arguments), `name` followed by an `Action Input:` section (LangChain), `name` with a fenced
  code block on the next lines (AgentInstruct's `Action: Operation` + ```sql), or a JSON
  object, bare or in a ``` fence, shaped `{"action": name, "action_input": ...}` or
  `{"name": name, "arguments": ...}`. Such a JSON object in a Thought section (fenced, or from
  a line starting with `{` to the section's end) is a call too, and leaves the reasoning.
- Arguments: a JSON object is the arguments; `name(key=value, ...)` is read as keyword
  arguments; anything else, a JSON scalar or plain text, becomes `{"input": text}` (a JSON
  string decoded, other text as written); empty arguments are `{}`.
- An action named `finish` or `Final Answer` (any case) and a `Final Answer:` section are not
  calls: their text is the step's content (several joined by newlines), else content is None.
- Call ids are `call_<n>`, n counting from 1 per trajectory, skipping ids the input uses.
If any `Action:` or `Action Input:` section cannot be read as above (free text such as
`go to cabinet 1`, trailing text after `search[x]`, a JSON object of another shape), the step
is left exactly as it was, with flag `unparsed_action` (raw_text stays None: content already
holds the text), and its would-be calls do not exist.

A user step whose text starts with `Observation:` (optionally numbered, after whitespace)
becomes a tool step answering the oldest unanswered call of the latest assistant step: content
is the text after the marker, stripped; raw_text the original. One that answers no call stays
a user step with flag `orphan_observation`. Every other step passes through unchanged; all
are re-indexed 0..n-1, one output step per input step.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from pipeline.core.formats.json_lines import strict_json
from pipeline.core.record import Step, ToolCall

UNPARSED_ACTION = "unparsed_action"
ORPHAN_OBSERVATION = "orphan_observation"

_NUMBERED = r"(?:[ \t]+\d+)?[ \t]*:"
_MARKER = re.compile(rf"^[ \t]*(Thought|Action Input|Action|Final Answer){_NUMBERED}[ \t]*", re.M)
_OBSERVATION = re.compile(rf"\s*Observation{_NUMBERED}")
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
_CALL = re.compile(rf"({_NAME.pattern})\s*(?:\[(.*)\]|\((.*)\))", re.S)
_FENCE = re.compile(r"```[ \t]*\w*[ \t]*\n(.*?)\n?[ \t]*```", re.S)
_KWARG = re.compile(r"""\s*([A-Za-z_]\w*)\s*=\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,"']+)\s*(?:,|\Z)""")
_BARE_JSON = re.compile(r"^[ \t]*\{", re.M)
_FINISH = ("finish", "final answer")
_NOT_JSON = object()


class _Action(NamedTuple):
    name: str
    arguments: dict[str, Any]
    text: str  # the arguments as written: a finish action's answer


class _Turn(NamedTuple):
    reasoning: str | None
    actions: list[_Action]  # in text order; a `Final Answer:` section is a finish action


def structure_react_steps(steps: list[Step]) -> list[Step]:
    """New steps with ReAct text turned into reasoning, tool calls and tool results (rules in
    the module docstring); the input is not changed."""
    taken = {c.id for s in steps for c in s.tool_calls} | {s.tool_call_id for s in steps if s.tool_call_id}
    ids = (f"call_{n}" for n in itertools.count(1) if f"call_{n}" not in taken)
    unanswered: deque[str] = deque()
    out: list[Step] = []
    for step in steps:
        if step.role == "assistant":
            unanswered.clear()  # an observation answers the latest assistant step's calls
            new = _assistant(step, ids, unanswered)
        elif step.role == "user":
            new = _user(step, unanswered)
        else:
            new = _copy(step)
        out.append(replace(new, index=len(out)))
    return out


def _copy(step: Step, **changes: Any) -> Step:
    """A new Step, its tool-call list not shared with the input's."""
    return replace(step, **{"tool_calls": list(step.tool_calls), **changes})


def _assistant(step: Step, ids: Iterator[str], unanswered: deque[str]) -> Step:
    text = step.content
    if step.tool_calls or not isinstance(text, str) or not _MARKER.search(text):
        return _copy(step)
    turn = _turn(text)
    if turn is None:
        return _copy(step, flag=UNPARSED_ACTION)
    calls = [ToolCall(next(ids), a.name, a.arguments) for a in turn.actions if not _is_finish(a.name)]
    unanswered.extend(c.id for c in calls)
    answers = [a.text for a in turn.actions if _is_finish(a.name)]
    reasoning = "\n".join(r for r in (step.reasoning, turn.reasoning) if r) or None
    content = "\n".join(answers) if answers else None
    return _copy(step, content=content, reasoning=reasoning, tool_calls=calls, raw_text=text)


def _user(step: Step, unanswered: deque[str]) -> Step:
    text = step.content
    match = _OBSERVATION.match(text) if isinstance(text, str) else None
    if match is None:
        return _copy(step)
    if not unanswered:
        return _copy(step, flag=ORPHAN_OBSERVATION)
    return _copy(
        step,
        role="tool",
        content=text[match.end() :].strip(),
        tool_call_id=unanswered.popleft(),
        raw_text=text,
    )


def _turn(text: str) -> _Turn | None:
    """An assistant text's sections, or None when an action in it cannot be read."""
    markers = list(_MARKER.finditer(text))
    ends = [m.start() for m in markers[1:]] + [len(text)]
    sections = [(m[1], text[m.end() : end]) for m, end in zip(markers, ends)]
    sections.insert(0, ("Thought", text[: markers[0].start()]))
    thoughts: list[str] = []
    actions: list[_Action] = []
    position = 0
    while position < len(sections):
        keyword, body = sections[position]
        position += 1
        if keyword == "Thought":
            thought, found = _thought_actions(body)
            thoughts.append(thought)
            actions += found
        elif keyword == "Final Answer":
            actions.append(_Action(keyword, {}, body.strip()))
        elif keyword == "Action Input":  # with no Action before it
            return None
        else:
            if position < len(sections) and sections[position][0] == "Action Input":
                action = _named_action(body, sections[position][1])
                position += 1
            else:
                action = _action(body)
            if action is None:
                return None
            actions.append(action)
    reasoning = "\n".join(t for t in (t.strip() for t in thoughts) if t) or None
    return _Turn(reasoning, actions)


def _action(body: str) -> _Action | None:
    """One `Action:` section's text as a call, or None."""
    text = body.strip()
    source = _unfence(text)
    value = _json(source)
    if isinstance(value, dict):
        return _json_action(value, source)
    match = _CALL.fullmatch(text)
    if match:
        bracketed = match[2] is not None
        inner = match[2] if bracketed else match[3]
        return _Action(match[1], _arguments(inner, keywords=not bracketed), inner.strip())
    if _NAME.fullmatch(text):
        return _Action(text, {}, "")
    name, _, rest = text.partition("\n")
    if _NAME.fullmatch(name.strip()) and _FENCE.fullmatch(rest.strip()):
        return _Action(name.strip(), _arguments(rest), _unfence(rest.strip()))
    return None


def _named_action(body: str, given: str) -> _Action | None:
    """LangChain's `Action: name` + `Action Input: ...`."""
    name = body.strip()
    if not (_NAME.fullmatch(name) or _is_finish(name)):
        return None
    return _Action(name, _arguments(given), _unfence(given.strip()))


def _thought_actions(body: str) -> tuple[str, list[_Action]]:
    """Action-shaped JSON objects in a thought (fenced, or a bare one ending it), and the
    thought without them."""
    actions: list[_Action] = []

    def take(match: re.Match[str]) -> str:
        value = _json(match[1])
        action = _json_action(value, match[1]) if isinstance(value, dict) else None
        if action is None:
            return match[0]
        actions.append(action)
        return ""

    thought = _FENCE.sub(take, body)
    bare = _BARE_JSON.search(thought)
    if bare:
        source = thought[bare.start() :]
        value = _json(source)
        action = _json_action(value, source) if isinstance(value, dict) else None
        if action is not None:
            actions.append(action)
            thought = thought[: bare.start()]
    return thought, actions


def _json_action(value: dict[str, Any], source: str) -> _Action | None:
    """`{"action", "action_input"}` or `{"name", "arguments"}` as a call; `source` is the
    object's text, the answer when an input too deeply nested to write again ends a turn."""
    for name_key, arguments_key in (("action", "action_input"), ("name", "arguments")):
        name = value.get(name_key)
        if not (isinstance(name, str) and name.strip()):
            continue
        given = value.get(arguments_key)
        if isinstance(given, str):
            return _Action(name.strip(), _arguments(given), given)
        if given is None:
            return _Action(name.strip(), {}, "")
        try:
            text = json.dumps(given, ensure_ascii=False)
        except RecursionError:
            text = source.strip()
        return _Action(name.strip(), given if isinstance(given, dict) else {"input": given}, text)
    return None


def _arguments(text: str, keywords: bool = False) -> dict[str, Any]:
    """Arguments text → dict: a JSON object as it is, `key=value, ...` when `keywords`, other
    text as {"input": text} (a JSON string decoded)."""
    text = _unfence(text.strip())
    if not text:
        return {}
    value = _json(text)
    if isinstance(value, dict):
        return value
    parsed = _keyword_arguments(text) if keywords else None
    if parsed is not None:
        return parsed
    return {"input": value if isinstance(value, str) else text}


def _keyword_arguments(text: str) -> dict[str, Any] | None:
    """Python-call style `key="v", n=2`, or None when the text is not only that."""
    out: dict[str, Any] = {}
    position = 0
    while position < len(text):
        match = _KWARG.match(text, position)
        if match is None:
            return None
        out[match[1]] = _literal(match[2])
        position = match.end()
    return out


def _literal(token: str) -> Any:
    if token[0] == "'":
        return token[1:-1].replace("\\'", "'")
    value = _json(token)
    if token[0] == '"':
        return value if isinstance(value, str) else token[1:-1]
    if value is _NOT_JSON:
        return {"True": True, "False": False, "None": None}.get(token, token)
    return value


def _unfence(text: str) -> str:
    match = _FENCE.fullmatch(text)
    return match[1] if match else text


def _json(text: str) -> Any:
    try:
        return strict_json(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _is_finish(name: str) -> bool:
    return name.strip().lower() in _FINISH
