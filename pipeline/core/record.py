"""The canonical trajectory record: one task attempt by an agent.

Every adapter produces these; everything downstream reads only these (as DuckDB tables).
The documented schema lives in docs/trajectory_schema.md; bump SCHEMA_VERSION on any
field change, since provenance records it per trajectory.

Plain dataclasses on purpose: they are the functional core's data and carry no I/O.
Tool-call `arguments` are always a dict here: adapters normalise JSON strings once, at
ingestion, so nothing downstream has to guess.

Schema 1.1 added Step `raw_text` and `flag`, for steps restructured from ReAct text in chat
messages (pipeline/core/formats/react_chat.py): the original text is kept, and a turn that
could not be parsed is flagged rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

SCHEMA_VERSION = "1.1"

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
VERIFIED_BY: tuple[str, ...] = ("environment", "test", "human")
FEEDBACK_SOURCES: tuple[str, ...] = ("human", "implicit", "judge", "environment")
SOURCE_FORMATS: tuple[str, ...] = ("canonical", "openai_chat", "otel_genai", "react_text")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Step:
    index: int
    role: str
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # set on role=tool: the call this result answers
    error: str | None = None  # tool error or time-out text, on role=tool
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    raw_text: str | None = None  # the message's original text, when restructured from ReAct text
    flag: str | None = None  # step-level parse flag, e.g. "unparsed_action"; the text is kept


@dataclass
class Outcome:
    success: bool | None = None  # None: not known
    reward: float | None = None
    verified_by: str | None = None  # environment / test / human
    termination: str | None = None  # e.g. completed, max_steps, user_abandoned, escalated, error


@dataclass
class Feedback:
    name: str  # e.g. rating, thumbs, correction, escalation, abandonment
    value: Any
    source: str  # human / implicit / judge / environment
    comment: str | None = None
    corrected_output: str | None = None
    at: str | None = None  # ISO-8601


@dataclass
class Consent:
    may_train: bool = False  # absent consent means no training use
    scope: str | None = None  # e.g. "training", "evaluation_only"


@dataclass
class Provenance:
    source_format: str
    source_uri: str  # lakefs://repo/commit/path of the raw file
    line: int  # 1-based line of the record's first line in the raw file
    raw_commit: str | None = None
    schema_version: str = SCHEMA_VERSION


@dataclass
class Trajectory:
    trajectory_id: str
    session_id: str | None
    user_id: str | None
    tenant: str | None
    agent_name: str | None
    agent_version: str | None
    model: str | None
    task_type: str | None
    goal: str | None
    started_at: str | None
    ended_at: str | None
    system_prompt: str | None
    tools: list[dict[str, Any]]  # JSON schemas, OpenAI function-tool shape
    request_params: dict[str, Any]
    steps: list[Step]
    outcome: Outcome
    feedback: list[Feedback]
    consent: Consent
    provenance: Provenance
    task_spec: dict[str, Any] | None = None  # simulator task spec, for sandbox replay
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields, kept, never dropped

    def to_dict(self) -> dict[str, Any]:
        """Equal to `dataclasses.asdict(self)`, several times faster: asdict deep-copies every
        leaf, which dominated ingestion's profile; leaves here are immutable JSON scalars."""
        return _plain(self)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def shallow_fields(value: Any) -> dict[str, Any]:
    """A dataclass instance's fields as a dict, values not copied (field names cached per class)."""
    kind = type(value)
    names = _FIELD_NAMES.get(kind) or _FIELD_NAMES.setdefault(kind, tuple(f.name for f in fields(value)))
    return {name: getattr(value, name) for name in names}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if is_dataclass(value):
        return {name: _plain(v) for name, v in shallow_fields(value).items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def trajectory_from_dict(data: dict[str, Any]) -> Trajectory:
    """Rebuild a Trajectory from `to_dict()` output (the canonical JSONL shape)."""
    steps = [
        Step(**{**s, "tool_calls": [ToolCall(**c) for c in s.get("tool_calls") or []]})
        for s in data.get("steps") or []
    ]
    return Trajectory(
        **{
            **{k: v for k, v in data.items() if k not in _NESTED},
            "steps": steps,
            "outcome": Outcome(**(data.get("outcome") or {})),
            "feedback": [Feedback(**f) for f in data.get("feedback") or []],
            "consent": Consent(**(data.get("consent") or {})),
            "provenance": Provenance(**data["provenance"]),
        }
    )


_NESTED = {"steps", "outcome", "feedback", "consent", "provenance"}
