"""`openai_chat` landing format: JSONL of Chat Completions-style conversations.

Teams wrap these logs differently, so where each field sits is an `OpenAIMapping` of dotted
paths. `OpenAIMapping.default()` is the shape in docs/trajectory_schema.md; the `wrapped`
preset reads `{"meta": {...}, "conversation": {"turns", "tools"}, "result": {...}}`. With no
mapping given, each record is read with the first preset whose `messages` path holds a list.

Every message becomes a step, in order (`developer`, OpenAI's newer name for the system
role, is read as `system`). `system_prompt` is the content of a leading system message.
Assistant `reasoning_content` is read as the step's reasoning. Tool-call `arguments` are JSON
strings, decoded here once. Flywheel's own per-message extensions `error`, `latency_ms`,
`prompt_tokens` and `completion_tokens` are read when present and written when set.
Request parameters are the mapping's `request_params` paths, keyed by their last segment.

Round trip (`parse_file(export(...))`) keeps every field except:
- `system_prompt`: derived from the first step, so a value that is not that system step's
  content is lost;
- a `request_params` key the mapping does not list comes back in `extra`;
- a tool call's `"type"` is not kept (always written as `"function"`).
`extra` keys are source paths and are written back there (after the mapped fields, which win).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from pipeline.core.formats.checks import (
    MISSING,
    check,
    check_role,
    join,
    leading_system_prompt,
    parse_arguments,
    read_object,
    require_id,
)
from pipeline.core.formats.fields import FIELD_KINDS, At, assemble, field_values, get_path, set_path
from pipeline.core.formats.guard import Record, RecordError, Source
from pipeline.core.formats.json_lines import JsonItem, Prepare, jsonl, parse_json_items
from pipeline.core.record import ROLES, Step, ToolCall, Trajectory

FORMAT = "openai_chat"
_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
)
_ROLE_ALIASES = {"developer": "system"}
_MESSAGE_KINDS = {
    "role": "str",
    "content": "any",
    "reasoning_content": "str?",
    "tool_calls": "list?",
    "tool_call_id": "str?",
    "error": "str?",
    "latency_ms": "float?",
    "prompt_tokens": "int32?",
    "completion_tokens": "int32?",
}
# Step attribute ← message key, for the keys that map one to one.
_MESSAGE_FIELDS = {
    "reasoning": "reasoning_content",
    "tool_call_id": "tool_call_id",
    "error": "error",
    "latency_ms": "latency_ms",
    "prompt_tokens": "prompt_tokens",
    "completion_tokens": "completion_tokens",
}


@dataclass(frozen=True)
class OpenAIMapping:
    """Dotted paths to each field in a record; `request_params` lists one path per parameter."""

    id: str = "id"
    messages: str = "messages"
    tools: str = "tools"
    model: str = "model"
    session_id: str = "metadata.session_id"
    user_id: str = "metadata.user_id"
    tenant: str = "metadata.tenant"
    agent_name: str = "metadata.agent_name"
    agent_version: str = "metadata.agent_version"
    task_type: str = "metadata.task_type"
    goal: str = "metadata.goal"
    started_at: str = "metadata.started_at"
    ended_at: str = "metadata.ended_at"
    success: str = "metadata.success"
    reward: str = "metadata.reward"
    verified_by: str = "metadata.verified_by"
    termination: str = "metadata.termination"
    feedback: str = "metadata.feedback"
    consent: str = "metadata.consent"
    task_spec: str = "metadata.task_spec"
    request_params: tuple[str, ...] = _PARAMS
    # Inside each message: the keys of its role and text (ShareGPT-style logs say "from" and
    # "value"), and role names read as ours ({"human": "user", "gpt": "assistant"}).
    message_role: str = "role"
    message_content: str = "content"
    roles: tuple[tuple[str, str], ...] = ()

    @classmethod
    def default(cls) -> OpenAIMapping:
        return cls()

    @classmethod
    def preset(cls, name: str) -> OpenAIMapping:
        if name not in PRESETS:
            raise ValueError(f"unknown openai_chat mapping preset {name!r}; known: {', '.join(PRESETS)}")
        return PRESETS[name]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> OpenAIMapping:
        """From configuration: `{"preset": "wrapped", "id": "req.id", ...}`; the preset (default
        `default`) supplies every path not given."""
        spec = dict(spec)
        base = cls.preset(spec.pop("preset", "default"))
        unknown = set(spec) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown openai_chat mapping keys: {', '.join(sorted(unknown))}")
        for key, value in spec.items():
            if not _is_path_spec(key, value):
                expected = {"request_params": "a list of dotted paths",
                            "roles": f"an object of role names to one of {', '.join(ROLES)}"}.get(key, "a dotted path")
                raise ValueError(f"openai_chat mapping {key!r}: expected {expected}, got {value!r}")
        changes: dict[str, Any] = {
            k: tuple(v) if k == "request_params" else tuple(sorted(v.items())) if k == "roles" else v
            for k, v in spec.items()
        }
        return replace(base, **changes)

    @functools.cache  # noqa: B019 - a handful of immutable mappings, each asked once per record
    def field_paths(self) -> dict[str, str]:
        """Trajectory field → path, for the fields mapped one to one (do not modify)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in FIELD_KINDS and f.name != "request_params"
        }

    @functools.cache  # noqa: B019 - as field_paths
    def record_paths(self) -> dict[str, str]:
        """Where a record keeps the fields a source's `prepare` hook reads and writes."""
        return {"id": self.id, **self.field_paths()}

    @functools.cache  # noqa: B019 - as field_paths
    def paths(self) -> frozenset[str]:
        return frozenset({self.id, self.messages, *self.field_paths().values(), *self.request_params})

    def param_path(self, key: str) -> str:
        return next((p for p in self.request_params if p.rsplit(".", 1)[-1] == key), key)


PRESETS: dict[str, OpenAIMapping] = {
    "default": OpenAIMapping(),
    "wrapped": OpenAIMapping(
        id="meta.request_id",
        messages="conversation.turns",
        tools="conversation.tools",
        model="meta.model",
        session_id="meta.session_id",
        user_id="meta.user",
        tenant="meta.tenant",
        agent_name="meta.agent_name",
        agent_version="meta.agent_version",
        task_type="meta.task_type",
        goal="meta.goal",
        started_at="meta.started_at",
        ended_at="meta.ended_at",
        success="result.success",
        reward="result.reward",
        verified_by="result.verified_by",
        termination="result.termination",
        feedback="result.feedback",
        consent="meta.consent",
        task_spec="meta.task_spec",
        request_params=tuple(f"conversation.params.{p}" for p in _PARAMS),
    ),
}


def _is_path_spec(key: str, value: Any) -> bool:
    if key == "roles":
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) and v in ROLES for k, v in value.items()
        )
    if key == "request_params":
        return isinstance(value, (list, tuple)) and all(isinstance(p, str) and p for p in value)
    return isinstance(value, str) and bool(value)


def match_preset(record: Any) -> OpenAIMapping | None:
    """The first preset whose `messages` path holds a list in `record`."""
    for mapping in PRESETS.values():
        try:
            if isinstance(get_path(record, mapping.messages), list):
                return mapping
        except RecordError:
            continue
    return None


def parse(
    items: Iterable[JsonItem], src: Source, mapping: OpenAIMapping | None = None, prepare: Prepare | None = None
) -> Iterator[Record]:
    def build(obj: dict[str, Any], item: JsonItem) -> Trajectory:
        m = mapping or _preset_for(obj)
        if prepare:
            obj = prepare(obj, item.key, m.record_paths())
        return _trajectory(obj, m, src, item.position)

    return parse_json_items(items, src, build)


def export(trajectories: Iterable[Trajectory], mapping: OpenAIMapping | None = None) -> bytes:
    return jsonl(_record(t, mapping or PRESETS["default"]) for t in trajectories)


# --- parse -----------------------------------------------------------------------------------


def _preset_for(obj: dict[str, Any]) -> OpenAIMapping:
    mapping = match_preset(obj)
    if mapping is None:
        paths = " or ".join(m.messages for m in PRESETS.values())
        raise RecordError(
            "missing_required_field", f"no conversation list at {paths} (configure a mapping?)"
        )
    return mapping


def _trajectory(obj: dict[str, Any], m: OpenAIMapping, src: Source, line: int) -> Trajectory:
    trajectory_id = require_id(get_path(obj, m.id), m.id)
    messages = get_path(obj, m.messages)
    if messages is MISSING:
        raise RecordError("missing_required_field", f"{m.messages}: required field is missing")
    extra: dict[str, Any] = {}
    steps = [
        _step(_standard_keys(msg, m), i, join(m.messages, i), extra, m)
        for i, msg in enumerate(check(messages, "list", m.messages))
    ]
    fields_at = {name: At(get_path(obj, path), path) for name, path in m.field_paths().items()}
    fields_at["system_prompt"] = At(leading_system_prompt(steps), m.messages)
    params = {path.rsplit(".", 1)[-1]: get_path(obj, path) for path in m.request_params}
    fields_at["request_params"] = At(
        {k: v for k, v in params.items() if v is not MISSING}, "request params"
    )
    extra.update(_leftovers(obj, m.paths()))
    return assemble(trajectory_id, steps, fields_at, extra, src.provenance(FORMAT, line))


def _standard_keys(message: Any, m: OpenAIMapping) -> Any:
    """A message with the mapping's role and text keys renamed to `role` and `content`."""
    if (m.message_role, m.message_content) == ("role", "content") or not isinstance(message, dict):
        return message
    rename = {m.message_role: "role", m.message_content: "content"}
    return {rename.get(key, key): value for key, value in message.items()}


def _step(value: Any, index: int, path: str, extra: dict[str, Any], m: OpenAIMapping) -> Step:
    msg = read_object(value, _MESSAGE_KINDS, path, extra, ("role",))
    aliases = {**_ROLE_ALIASES, **dict(m.roles)}
    role = check_role(aliases.get(msg["role"], msg["role"]), join(path, "role"))
    calls_path = join(path, "tool_calls")
    calls = [
        _tool_call(c, join(calls_path, j), extra) for j, c in enumerate(msg.get("tool_calls") or [])
    ]
    return Step(
        index=index,
        role=role,
        content=_content(msg.get("content"), join(path, "content")),
        tool_calls=calls,
        **{attr: msg.get(key) for attr, key in _MESSAGE_FIELDS.items()},
    )


def _content(value: Any, path: str) -> str | None:
    """A string, null, or a list of text parts (joined)."""
    if value is None or isinstance(value, str):
        return value
    parts = check(value, "list", path)
    texts = []
    for i, part in enumerate(parts):
        part = check(part, "object", join(path, i))
        if part.get("type") != "text":
            raise RecordError(
                "wrong_type", f"{join(path, i)}: expected a text part, got type {part.get('type')!r}"
            )
        texts.append(check(part.get("text"), "str", join(join(path, i), "text")))
    return "".join(texts)


def _tool_call(value: Any, path: str, extra: dict[str, Any]) -> ToolCall:
    call = read_object(
        value, {"id": "str", "type": "str", "function": "object"}, path, extra, ("id", "function")
    )
    fn_path = join(path, "function")
    fn = read_object(
        call["function"], {"name": "str", "arguments": "any"}, fn_path, extra, ("name", "arguments")
    )
    return ToolCall(call["id"], fn["name"], parse_arguments(fn["arguments"], join(fn_path, "arguments")))


def _leftovers(obj: dict[str, Any], known: frozenset[str], prefix: str = "") -> dict[str, Any]:
    """Values not under a mapped path, keyed by their path (recursing only into objects that
    hold mapped paths)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = join(prefix, key)
        if path in known:
            continue
        if isinstance(value, dict) and any(k.startswith(path + ".") for k in known):
            out.update(_leftovers(value, known, path))
        else:
            out[path] = value
    return out


# --- export ----------------------------------------------------------------------------------


def _record(t: Trajectory, m: OpenAIMapping) -> dict[str, Any]:
    record: dict[str, Any] = {}
    set_path(record, m.id, t.trajectory_id)
    set_path(record, m.messages, [_message(s, m) for s in t.steps])
    values = field_values(t)
    for name, path in m.field_paths().items():
        if name in values:
            set_path(record, path, values[name])
    for key, value in t.request_params.items():
        set_path(record, m.param_path(key), value)
    for key, value in t.extra.items():
        set_path(record, key, value)
    return record


def _message(step: Step, m: OpenAIMapping) -> dict[str, Any]:
    optional = {key: getattr(step, attr) for attr, key in _MESSAGE_FIELDS.items()}
    optional["tool_calls"] = [_call(c) for c in step.tool_calls] or None
    their_role = {ours: theirs for theirs, ours in m.roles}.get(step.role, step.role)
    return {
        m.message_role: their_role,
        m.message_content: step.content,
        **{k: v for k, v in optional.items() if v is not None},
    }


def _call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
    }
