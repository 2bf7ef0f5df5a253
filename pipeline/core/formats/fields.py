"""The mapping between a Trajectory's fields and plain JSON values, and the dotted source
paths ("a.b", "a[2].b") that formats read them from and write them to.

Conventions every adapter follows: `null` means "absent" for the defaulted fields `tools`,
`request_params`, `feedback` and `consent`; unknown fields are kept in `Trajectory.extra`
under their source path: `"created"` for a top-level key, `"metadata.region"` for a nested
one, `"messages[2].name"` inside a list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, NamedTuple

from pipeline.core.formats.checks import MISSING, check, check_items, join, read_object
from pipeline.core.formats.guard import RecordError
from pipeline.core.formats.json_lines import json_type
from pipeline.core.record import Consent, Feedback, Outcome, Provenance, Step, Trajectory


class At(NamedTuple):
    """A raw value and the source path it came from (for error details)."""

    value: Any
    path: str


# --- trajectory fields <-> plain values ------------------------------------------------------

OUTCOME_FIELDS = ("success", "reward", "verified_by", "termination")
# The trajectory-level fields every format reads and writes (besides id, steps, extra), in
# the order exporters write them. A kind with "?" may be null; defaulted ones treat null as absent.
FIELD_KINDS: dict[str, str] = {
    "session_id": "str?",
    "user_id": "str?",
    "tenant": "str?",
    "agent_name": "str?",
    "agent_version": "str?",
    "model": "str?",
    "task_type": "str?",
    "goal": "str?",
    "started_at": "str?",
    "ended_at": "str?",
    "system_prompt": "str?",
    "tools": "list?",
    "request_params": "object?",
    "task_spec": "object?",
    "success": "bool?",
    "reward": "float?",
    "verified_by": "str?",
    "termination": "str?",
    "feedback": "list?",
    "consent": "object?",
}
_DIRECT = tuple(n for n in FIELD_KINDS if n not in (*OUTCOME_FIELDS, "feedback", "consent"))
FEEDBACK_KINDS = {
    "name": "str",
    "value": "any",
    "source": "str",
    "comment": "str?",
    "corrected_output": "str?",
    "at": "str?",
}
_FEEDBACK_NEEDED = ("name", "value", "source")
CONSENT_KINDS = {"may_train": "bool", "scope": "str?"}


def field_values(t: Trajectory) -> dict[str, Any]:
    """The FIELD_KINDS fields of `t` that are set (not null, [] or {}), as plain JSON values:
    what exporters write. Parsing gives the unset ones back as defaults."""
    values = {
        **{name: getattr(t, name) for name in _DIRECT},
        **asdict(t.outcome),
        "feedback": [asdict(f) for f in t.feedback],
        "consent": asdict(t.consent),
    }
    return {
        name: value
        for name, value in values.items()
        if value is not None and value != [] and value != {}
    }


def assemble(
    trajectory_id: str,
    steps: list[Step],
    fields: Mapping[str, At],
    extra: dict[str, Any],
    provenance: Provenance,
) -> Trajectory:
    """Type-check the raw FIELD_KINDS values (absent ones default) and build the Trajectory."""
    unknown = set(fields) - set(FIELD_KINDS)
    if unknown:
        raise ValueError(f"not trajectory fields: {sorted(unknown)}")
    at = {name: fields.get(name, At(MISSING, name)) for name in FIELD_KINDS}
    v = {
        name: None if a.value is MISSING else check(a.value, FIELD_KINDS[name], a.path)
        for name, a in at.items()
    }
    if not steps:
        raise RecordError("empty_trajectory", "trajectory has no steps")
    tools = check_items(v["tools"] or [], "object", at["tools"].path)
    feedback = [
        Feedback(
            **read_object(item, FEEDBACK_KINDS, join(at["feedback"].path, i), extra, _FEEDBACK_NEEDED)
        )
        for i, item in enumerate(v["feedback"] or [])
    ]
    consent = Consent(**read_object(v["consent"] or {}, CONSENT_KINDS, at["consent"].path, extra))
    return Trajectory(
        trajectory_id=trajectory_id,
        **{name: v[name] for name in _DIRECT if name not in ("tools", "request_params")},
        tools=tools,
        request_params=v["request_params"] or {},
        steps=steps,
        outcome=Outcome(**{name: v[name] for name in OUTCOME_FIELDS}),
        feedback=feedback,
        consent=consent,
        provenance=provenance,
        extra=extra,
    )


# --- source paths: "a.b", "a[2].b" -----------------------------------------------------------

_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[\d+\])*\Z")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@functools.lru_cache(maxsize=1024)
def split_path(path: str) -> tuple[str | int, ...]:
    """Segments of a dotted path; a key that is not of path shape is one literal segment.
    (Cached: a mapping's few paths are looked up in every record.)"""
    if not _PATH.match(path):
        return (path,)
    return tuple(int(index) if index else key for key, index in _SEGMENT.findall(path))


def get_path(obj: Any, path: str) -> Any:
    """Value at a dotted path, MISSING if absent; wrong_type if it runs into a non-container."""
    segments = split_path(path)
    for depth, segment in enumerate(segments):
        if isinstance(segment, int) and isinstance(obj, list):
            if not 0 <= segment < len(obj):
                return MISSING
        elif isinstance(segment, str) and isinstance(obj, dict):
            if segment not in obj:
                return MISSING
        else:
            done = functools.reduce(join, segments[:depth], "")
            expected = "array" if isinstance(segment, int) else "object"
            raise RecordError("wrong_type", f"{done or 'record'}: expected {expected}, got {json_type(obj)}")
        obj = obj[segment]
    return obj


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Write `value` at a dotted path, creating objects on the way. A value already there is
    kept (first writer wins); a path through a non-container or a missing list item is skipped."""
    *parents, leaf = split_path(path)
    node: Any = obj
    for segment in parents:
        if isinstance(segment, int) and isinstance(node, list) and segment < len(node):
            node = node[segment]
        elif isinstance(segment, str) and isinstance(node, dict):
            node = node.setdefault(segment, {})
        else:
            return
    if isinstance(leaf, str) and isinstance(node, dict):
        node.setdefault(leaf, value)
