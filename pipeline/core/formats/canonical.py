"""`canonical` landing format: JSONL, one `Trajectory.to_dict()` per line without
`provenance`, plus `"schema_version"`.

It is the record's own shape, so it round-trips every field. Records of the same major
schema version are read (a newer minor version's unknown fields land in `extra`); another
major version is quarantined rather than guessed at. Step indices must be 0..n-1 in order.
The record's own `extra` object is kept, and unknown keys found elsewhere are added to it
under their path (e.g. `"steps[2].foo"`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pipeline.core.formats.checks import (
    MISSING,
    check,
    check_role,
    join,
    parse_arguments,
    read_object,
    require_id,
    required,
)
from pipeline.core.formats.fields import FIELD_KINDS, OUTCOME_FIELDS, At, assemble
from pipeline.core.formats.guard import Record, RecordError, Source
from pipeline.core.formats.json_lines import JsonItem, Prepare, jsonl, parse_json_items
from pipeline.core.record import SCHEMA_VERSION, Step, ToolCall, Trajectory

FORMAT = "canonical"
_STEP_KINDS = {
    "index": "int32",
    "role": "str",
    "content": "str?",
    "reasoning": "str?",
    "tool_calls": "list",
    "tool_call_id": "str?",
    "error": "str?",
    "latency_ms": "float?",
    "prompt_tokens": "int32?",
    "completion_tokens": "int32?",
    "raw_text": "str?",
    "flag": "str?",
}
_TOOL_CALL_KINDS = {"id": "str", "name": "str", "arguments": "any"}
_TOP_FIELDS = tuple(name for name in FIELD_KINDS if name not in OUTCOME_FIELDS)
_KNOWN = {"schema_version", "trajectory_id", "steps", "outcome", "extra", *_TOP_FIELDS}


# Where a canonical record keeps the fields a source's `prepare` hook reads and writes.
RECORD_PATHS = {
    "id": "trajectory_id",
    **{name: name for name in _TOP_FIELDS},
    **{name: f"outcome.{name}" for name in OUTCOME_FIELDS},
}


def parse(items: Iterable[JsonItem], src: Source, prepare: Prepare | None = None) -> Iterator[Record]:
    def build(obj: dict[str, Any], item: JsonItem) -> Trajectory:
        return _trajectory(prepare(obj, item.key, RECORD_PATHS) if prepare else obj, src, item.position)

    return parse_json_items(items, src, build)


def export(trajectories: Iterable[Trajectory]) -> bytes:
    return jsonl(_record(t) for t in trajectories)


def _record(t: Trajectory) -> dict[str, Any]:
    body = t.to_dict()
    del body["provenance"]
    return {"schema_version": SCHEMA_VERSION, **body}


def _trajectory(obj: dict[str, Any], src: Source, line: int) -> Trajectory:
    version = required(obj, "schema_version", "str", "")
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise RecordError(
            "unsupported_schema_version",
            f"schema_version {version!r} is not supported (this reader reads {SCHEMA_VERSION})",
        )
    trajectory_id = require_id(obj.get("trajectory_id", MISSING), "trajectory_id")
    extra = dict(check(obj.get("extra") or {}, "object", "extra"))
    extra.update((key, value) for key, value in obj.items() if key not in _KNOWN)
    steps = [_step(s, i, extra) for i, s in enumerate(required(obj, "steps", "list", ""))]
    outcome = read_object(
        obj.get("outcome") or {}, dict.fromkeys(OUTCOME_FIELDS, "any"), "outcome", extra
    )
    fields = {name: At(obj.get(name, MISSING), name) for name in _TOP_FIELDS}
    fields.update(
        {name: At(outcome.get(name, MISSING), join("outcome", name)) for name in OUTCOME_FIELDS}
    )
    return assemble(trajectory_id, steps, fields, extra, src.provenance(FORMAT, line))


def _step(value: Any, index: int, extra: dict[str, Any]) -> Step:
    path = join("steps", index)
    fields = read_object(value, _STEP_KINDS, path, extra, ("index", "role"))
    if fields["index"] != index:
        raise RecordError("invalid_step_order", f"{path}.index: expected {index}, got {fields['index']}")
    calls = [
        _tool_call(c, join(join(path, "tool_calls"), j), extra)
        for j, c in enumerate(fields.get("tool_calls", []))
    ]
    return Step(
        **{**fields, "role": check_role(fields["role"], join(path, "role")), "tool_calls": calls}
    )


def _tool_call(value: Any, path: str, extra: dict[str, Any]) -> ToolCall:
    fields = read_object(value, _TOOL_CALL_KINDS, path, extra, ("id", "name", "arguments"))
    return ToolCall(
        fields["id"], fields["name"], parse_arguments(fields["arguments"], join(path, "arguments"))
    )
