"""Machinery the four format adapters share: the per-record guard, typed field checks, and
the mapping between a Trajectory's fields and plain JSON values.

Why one module: every format must account for records the same way (exactly one Parsed or
Quarantined per record, a reason from REASONS, a one-line detail an operator can act on) and
must type the same fields the same way. Keeping that here is what makes the formats agree.

Conventions used by every adapter:
- A value is checked, never coerced, except that a JSON integer is accepted where a float is
  expected (JSON has one number type) and `null` means "absent" for the defaulted fields
  `tools`, `request_params`, `feedback` and `consent`.
- Unknown fields are kept in `Trajectory.extra` under their source path: `"created"` for a
  top-level key, `"metadata.region"` for a nested one, `"messages[2].name"` inside a list.
"""

from __future__ import annotations

import codecs
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, TypeVar

import msgspec

from pipeline.core.record import ROLES, Consent, Feedback, Outcome, Provenance, Step, Trajectory

REASONS: tuple[str, ...] = (
    "invalid_utf8",  # the record's bytes are not UTF-8
    "invalid_json",  # not parseable JSON, truncated lines included
    "not_an_object",  # a JSONL line holds JSON that is not an object
    "record_too_large",  # over max_record_bytes; not decoded at all
    "missing_required_field",  # e.g. no trajectory id, a trace without its root span, no Reward line
    "wrong_type",  # a field holds the wrong JSON type; detail names the path
    "invalid_tool_arguments",  # arguments not JSON, or JSON but not an object
    "unsupported_schema_version",  # canonical record of another major schema version
    "empty_trajectory",  # no steps
    "invalid_step_order",  # unknown role, or canonical step indices not 0..n-1
    "unknown_format",  # the file's format could not be detected (emitted by the caller)
    "parse_error",  # any unexpected exception while parsing one record
)
EXCERPT_CHARS = 500
DETAIL_CHARS = 500
_T = TypeVar("_T")


@dataclass(frozen=True)
class Parsed:
    trajectory: Trajectory  # provenance (source, line) is inside


@dataclass(frozen=True)
class Quarantined:
    reason: str  # one of REASONS
    detail: str  # one line: what exactly was wrong, with the field path
    source_uri: str
    line: int  # 1-based line of the record
    raw_excerpt: str  # first EXCERPT_CHARS of the record, undecodable bytes replaced


Record = Parsed | Quarantined


class RecordError(Exception):
    """Raised while parsing one record; `attempt` turns it into a Quarantined."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()  # a key that is absent, as opposed to present and null


class At(NamedTuple):
    """A raw value and the source path it came from (for error details)."""

    value: Any
    path: str


@dataclass(frozen=True)
class Source:
    """Where the bytes came from, and the per-record size limit."""

    uri: str
    raw_commit: str | None
    max_record_bytes: int

    def provenance(self, fmt: str, line: int) -> Provenance:
        return Provenance(source_format=fmt, source_uri=self.uri, line=line, raw_commit=self.raw_commit)


# --- the per-record guard ---------------------------------------------------------------


def excerpt(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        return raw[:EXCERPT_CHARS].decode("utf-8", errors="replace")
    return raw[:EXCERPT_CHARS]


def quarantine(reason: str, detail: str, src: Source, line: int, raw: bytes | str) -> Quarantined:
    one_line = " ".join(detail.splitlines())
    if len(one_line) > DETAIL_CHARS:
        one_line = one_line[: DETAIL_CHARS - 1] + "…"
    return Quarantined(reason, one_line, src.uri, line, excerpt(raw))


def attempt(
    src: Source, line: int, raw: bytes | str, build: Callable[..., _T], *args: Any
) -> _T | Quarantined:
    """`build(*args)` for one record; whatever goes wrong becomes that record's Quarantined."""
    try:
        return build(*args)
    except RecordError as err:
        return quarantine(err.reason, err.detail, src, line, raw)
    except Exception as err:  # one bad record must never stop the file
        return quarantine("parse_error", f"{type(err).__name__}: {err}", src, line, raw)


def parse_record(
    src: Source, line: int, raw: bytes | str, build: Callable[..., Trajectory], *args: Any
) -> Record:
    """One record's outcome: Parsed(build(*args)), or the Quarantined saying why not."""
    return attempt(src, line, raw, _parsed, build, *args)


def _parsed(build: Callable[..., Trajectory], *args: Any) -> Parsed:
    return Parsed(build(*args))


# --- bytes, lines, JSON -------------------------------------------------------------------


def iter_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its \\n or \\r\\n), one line in memory at a time.
    A leading UTF-8 byte order mark (Windows tools write one) marks the file's encoding; it is
    not part of line 1."""
    start, number = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end
        number += 1
        line = data[start:end]
        yield number, line[:-1] if line.endswith(b"\r") else line
        start = end + 1


def is_blank(line: bytes) -> bool:
    return not line.strip()


def decode_utf8(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start : err.start + 4]
        detail = f"{where}: invalid UTF-8 at byte {err.start} ({bad!r})"
        raise RecordError("invalid_utf8", detail) from None


def check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise RecordError("record_too_large", f"record is {size} bytes, over the limit of {max_bytes}")


def _finite_number(literal: str) -> float:
    number = float(literal)
    if math.isinf(number):
        raise ValueError(f"{literal[:20]} is beyond the range of a number")
    return number


def _not_a_json_number(constant: str) -> float:
    raise ValueError(f"{constant} is not a JSON number")


# Strict RFC 8259 JSON: Python's json module also reads NaN and Infinity, and turns a literal
# beyond the float range into inf. Neither is JSON, DuckDB's JSON columns and downstream tools
# would carry or choke on them, and orjson (which writes the JSON columns) would write null.
STRICT_JSON = json.JSONDecoder(parse_float=_finite_number, parse_constant=_not_a_json_number)
# msgspec's C decoder reads the same strict JSON to the same values, several times faster (it
# validates UTF-8 itself). It refuses a little more (a lone surrogate escape, which Python
# reads): anything it refuses goes through STRICT_JSON, which words the error or reads it.
_FAST_JSON = msgspec.json.Decoder()


def strict_json(text: str | bytes) -> Any:
    """Strict JSON, or STRICT_JSON's exception (bytes must be UTF-8)."""
    try:
        return _FAST_JSON.decode(text)
    except Exception:  # msgspec.DecodeError, RecursionError, UnicodeDecodeError, ...
        return STRICT_JSON.decode(text if isinstance(text, str) else text.decode("utf-8"))


def loads(text: str, where: str) -> Any:
    try:
        return strict_json(text)
    except json.JSONDecodeError as err:
        truncated = " (truncated?)" if err.pos >= len(text.rstrip()) else ""
        detail = f"{where}: {err.msg} at column {err.colno}{truncated}"
        raise RecordError("invalid_json", detail) from None
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise RecordError("invalid_json", f"{where}: {err}"[:DETAIL_CHARS]) from None


def decode_object(line: bytes, max_bytes: int) -> dict[str, Any]:
    """One JSONL line → its JSON object, or the RecordError saying why not."""
    check_size(len(line), max_bytes)
    try:
        value = _FAST_JSON.decode(line)
    except Exception:  # not UTF-8, not JSON, or JSON only Python reads: the exact reason
        value = loads(decode_utf8(line, "line"), "line is not valid JSON")
    if not isinstance(value, dict):
        raise RecordError("not_an_object", f"expected a JSON object per line, got {json_type(value)}")
    return value


def parse_jsonl(
    data: bytes, src: Source, build: Callable[[dict[str, Any], int], Trajectory]
) -> Iterator[Record]:
    """One Parsed or Quarantined per non-blank line; `build(object, line_number)`."""
    for number, line in iter_lines(data):
        if not is_blank(line):
            yield parse_record(src, number, line, _from_line, build, line, number, src.max_record_bytes)


def _from_line(
    build: Callable[[dict[str, Any], int], Trajectory], line: bytes, number: int, max_bytes: int
) -> Trajectory:
    return build(decode_object(line, max_bytes), number)


def jsonl(records: Iterable[Any]) -> bytes:
    return b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in records)


# --- typed checks -------------------------------------------------------------------------

# kind → accepted Python types; "?" suffix = may also be null
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "int32": (int,),  # an integer stored in a 32-bit column (step index, token counts)
    "float": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
    "any": (object,),
}
_KIND_NAMES = {
    "str": "string",
    "int": "integer",
    "int32": "integer",
    "float": "number",
    "bool": "boolean",
    "object": "object",
    "list": "array",
    "any": "any value",
}
_INT32 = range(-(2**31), 2**31)
# kind → the exact types a JSON parser produces that pass as they are. The common case is
# then one set lookup; conversions, range checks and errors take the slow path.
_PASS_AS_IS: dict[str, frozenset[type]] = {
    "str": frozenset({str}),
    "int": frozenset({int}),  # bool is a subclass of int, but not `type(value) is int`
    "int32": frozenset(),
    "float": frozenset({float}),
    "bool": frozenset({bool}),
    "object": frozenset({dict}),
    "list": frozenset({list}),
    "any": frozenset(),
}
_PASS_AS_IS.update({f"{kind}?": types | {type(None)} for kind, types in list(_PASS_AS_IS.items())})


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def check(value: Any, kind: str, path: str) -> Any:
    """`value` if it is of `kind` (int widened to float for "float"), else wrong_type."""
    if type(value) in _PASS_AS_IS[kind]:
        return value
    return _check_slowly(value, kind, path)


def _check_slowly(value: Any, kind: str, path: str) -> Any:
    base, nullable = kind.rstrip("?"), kind.endswith("?")
    if value is None and (nullable or base == "any"):
        return value
    ok = isinstance(value, _KINDS[base]) and not (isinstance(value, bool) and base in ("int", "int32", "float"))
    if ok and base == "float":
        try:
            return float(value)
        except OverflowError:  # a JSON integer beyond any float
            raise RecordError("wrong_type", f"{path}: {str(value)[:20]}... is too large for a number") from None
    if ok and base == "int32" and value not in _INT32:
        shown = str(value) if abs(value) < 10**20 else f"{str(value)[:20]}..."
        raise RecordError("wrong_type", f"{path}: {shown} is outside the 32-bit integer range")
    if ok:
        return value
    expected = _KIND_NAMES[base] + (" or null" if nullable else "")
    raise RecordError("wrong_type", f"{path}: expected {expected}, got {json_type(value)}")


def check_items(values: list[Any], kind: str, path: str) -> list[Any]:
    """Each item of an already checked list as `kind` (item paths built only for an error)."""
    return [item if type(item) in _PASS_AS_IS[kind] else _check_slowly(item, kind, join(path, i))
            for i, item in enumerate(values)]


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def required(obj: Mapping[str, Any], key: str, kind: str, path: str) -> Any:
    if key not in obj:
        raise RecordError("missing_required_field", f"{join(path, key)}: required field is missing")
    value = obj[key]
    return value if type(value) in _PASS_AS_IS[kind] else _check_slowly(value, kind, join(path, key))


def read_object(
    value: Any, kinds: Mapping[str, str], path: str, extra: dict[str, Any], needed: Iterable[str] = ()
) -> dict[str, Any]:
    """Check the known keys of an object; unknown keys go to `extra` under their path."""
    obj = check(value, "object", path)
    for key in needed:
        if key not in obj:
            raise RecordError("missing_required_field", f"{join(path, key)}: required field is missing")
    out = {}
    for key, item in obj.items():
        kind = kinds.get(key)
        if kind is None:
            extra[join(path, key)] = item
        elif type(item) in _PASS_AS_IS[kind]:
            out[key] = item
        else:
            out[key] = _check_slowly(item, kind, join(path, key))
    return out


def require_id(value: Any, path: str) -> str:
    if value is MISSING or value is None or value == "":
        raise RecordError("missing_required_field", f"{path}: trajectory id is missing")
    trajectory_id: str = check(value, "str", path)
    return trajectory_id


def check_role(value: Any, path: str) -> str:
    role: str = check(value, "str", path)
    if role not in ROLES:
        expected = ", ".join(ROLES)
        raise RecordError(
            "invalid_step_order", f"{path}: unknown role {role!r} (expected one of {expected})"
        )
    return role


def parse_arguments(value: Any, path: str) -> dict[str, Any]:
    """Tool-call arguments → dict: the one place a JSON-string form is decoded."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise RecordError(
            "wrong_type", f"{path}: expected object or JSON string, got {json_type(value)}"
        )
    try:
        parsed = strict_json(value)
    except json.JSONDecodeError as err:
        detail = f"{path}: not valid JSON ({err.msg} at column {err.colno})"
        raise RecordError("invalid_tool_arguments", detail) from None
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise RecordError("invalid_tool_arguments", f"{path}: {err}"[:DETAIL_CHARS]) from None
    if not isinstance(parsed, dict):
        raise RecordError("invalid_tool_arguments", f"{path}: JSON {json_type(parsed)} is not an object")
    return parsed


def leading_system_prompt(steps: list[Step]) -> str | None:
    """The formats that carry the system prompt as a message derive the field from it."""
    return steps[0].content if steps and steps[0].role == "system" else None


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
