"""`otel_genai` landing format: OTLP/JSON traces (one `ExportTraceServiceRequest` per line)
following the OpenTelemetry GenAI semantic conventions. One trace = one trajectory.

Spans are grouped by `traceId` across the whole file, because an exporter flushes batches
and one trace can straddle several lines; so unlike the line formats this one holds the
file's spans (not one record) in memory until the end of the file. A span id seen again in
its trace (a re-sent batch) is a copy: the first one is kept. Accounting: one record
per trace, plus one Quarantined per line that yields no spans (bad JSON, bad structure, or
no spans at all).

Reading a trace:
- The root is the `invoke_agent` span without a parent; a trace without one is quarantined
  (`missing_required_field`). Trajectory fields are its attributes: `flywheel.trajectory_id`
  (else the trace id), `gen_ai.conversation.id` → session_id, `user.id`, `gen_ai.agent.name`,
  `gen_ai.agent.version`, `gen_ai.request.model`, `gen_ai.system_instructions` (text parts)
  → system_prompt, `gen_ai.tool.definitions` → tools, every other `gen_ai.request.<k>` →
  request_params[k], and `flywheel.*` for what the conventions lack (tenant, task_type,
  goal, outcome.*, feedback, consent, task_spec). A field missing on the root is taken from
  the first `chat` span that has it. Root start/end times are started_at/ended_at.
- Steps come from the other spans in start-time order (ties: file order). A `chat` span's
  `gen_ai.input.messages` is the full history sent to the model, as the conventions say; the
  messages past those already turned into steps become steps, then its first output message
  becomes an assistant step with the span's duration and `gen_ai.usage.*_tokens`. An
  `execute_tool` span becomes a tool step (`gen_ai.tool.call.id`, `gen_ai.tool.call.result`,
  error from an ERROR status message, duration). Last, the root's own input/output messages
  are read the same way, which carries steps after the last model or tool call. Spans of
  other operations are ignored.
- Attribute values use OTLP's AnyValue; `intValue` strings are integers by the OTLP/JSON spec.
  Message and JSON-valued attributes may be JSON strings or structured values.
- Unknown root attributes go to `extra` under their key; resource attributes under
  `extra["otel.resource"]`. Attributes of other spans and the scope are not kept.
- Times: unix nanoseconds ↔ ISO-8601 UTC, written `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z` with
  trailing fraction zeros trimmed; a naive ISO time is taken as UTC.

Round trip keeps every field except: latency and tokens of system/user steps, tokens of
tool steps, `error` on non-tool steps, reasoning/tool calls on tool steps, and timestamps are
normalised as above. `extra` keys that collide with attributes written here are lost.
Export synthesises deterministic trace/span ids and back-to-back span times from started_at
(or 0) and each step's latency.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from pipeline.core.formats.checks import MISSING, check, check_role, join, parse_arguments, require_id, required
from pipeline.core.formats.fields import At, assemble, field_values
from pipeline.core.formats.guard import EXCERPT_CHARS, Quarantined, Record, RecordError, Source, attempt, parse_record
from pipeline.core.formats.json_lines import decode_object, is_blank, iter_lines, jsonl, loads
from pipeline.core.record import Step, ToolCall, Trajectory

FORMAT = "otel_genai"
_OP = "gen_ai.operation.name"
_ID = "flywheel.trajectory_id"
_INPUT, _OUTPUT = "gen_ai.input.messages", "gen_ai.output.messages"
_SYSTEM = "gen_ai.system_instructions"
_REQUEST, _MODEL = "gen_ai.request.", "gen_ai.request.model"
_IN_TOKENS, _OUT_TOKENS = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
_TOOL_NAME, _CALL_ID = "gen_ai.tool.name", "gen_ai.tool.call.id"
_ARGUMENTS, _RESULT = "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"
_RESOURCE = "otel.resource"  # extra key for the resource attributes
_PLAIN_ATTRS = {
    "session_id": "gen_ai.conversation.id",
    "user_id": "user.id",
    "tenant": "flywheel.tenant",
    "agent_name": "gen_ai.agent.name",
    "agent_version": "gen_ai.agent.version",
    "model": _MODEL,
    "task_type": "flywheel.task_type",
    "goal": "flywheel.goal",
    "success": "flywheel.outcome.success",
    "reward": "flywheel.outcome.reward",
    "verified_by": "flywheel.outcome.verified_by",
    "termination": "flywheel.outcome.termination",
}
_JSON_ATTRS = {
    "tools": "gen_ai.tool.definitions",
    "task_spec": "flywheel.task_spec",
    "feedback": "flywheel.feedback",
    "consent": "flywheel.consent",
}
_ROOT_KNOWN = {_OP, _ID, _INPUT, _OUTPUT, _SYSTEM, *_PLAIN_ATTRS.values(), *_JSON_ATTRS.values()}
_ERROR_CODES = (2, "STATUS_CODE_ERROR")
_SPAN_KIND_INTERNAL = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?\Z")
_INTEGER = re.compile(r"-?\d+\Z")
_ANY_SCALARS = {"stringValue": "str", "bytesValue": "str", "boolValue": "bool", "doubleValue": "float"}
_EXACT_SCALARS = {"stringValue": str, "bytesValue": str, "boolValue": bool, "doubleValue": float}


@dataclass(frozen=True)
class _RawSpan:
    span: dict[str, Any]
    resource: Any  # the raw attribute list of the span's resource
    line: int
    excerpt: bytes  # the start of the span's line


@dataclass(frozen=True)
class _Span:
    span_id: str
    parent: str
    op: str | None
    attrs: dict[str, Any]
    start: int | None
    end: int | None
    error: str | None
    resource: dict[str, Any]
    order: tuple[int, int]

    @property
    def latency_ms(self) -> float | None:
        return None if self.start is None or self.end is None else (self.end - self.start) / 1e6


def parse(data: bytes | IO[bytes], src: Source) -> Iterator[Record]:
    traces: dict[str, list[_RawSpan]] = {}
    for number, line in iter_lines(data):
        if is_blank(line):
            continue
        spans = attempt(src, number, line, _line_spans, line, number, src.max_record_bytes)
        if isinstance(spans, Quarantined):
            yield spans
            continue
        for raw in spans:
            traces.setdefault(raw.span["traceId"], []).append(raw)
    for trace_id, raws in traces.items():
        yield parse_record(src, raws[0].line, raws[0].excerpt, _trajectory, trace_id, raws, src)


def export(trajectories: Iterable[Trajectory]) -> bytes:
    return jsonl(_request(t) for t in trajectories)


# --- parse: lines → spans → traces ------------------------------------------------------------


def _line_spans(line: bytes, number: int, max_bytes: int) -> list[_RawSpan]:
    """The spans of one ExportTraceServiceRequest line, structure checked."""
    request = decode_object(line, max_bytes)
    required(request, "resourceSpans", "list", "")
    spans = []
    for rs_path, resource_spans in _items(request, "resourceSpans", ""):
        resource = check(resource_spans.get("resource") or {}, "object", join(rs_path, "resource"))
        for ss_path, scope_spans in _items(resource_spans, "scopeSpans", rs_path):
            for span_path, span in _items(scope_spans, "spans", ss_path):
                for key in ("traceId", "spanId"):
                    if not required(span, key, "str", span_path):
                        raise RecordError("missing_required_field", f"{join(span_path, key)}: empty")
                spans.append(
                    _RawSpan(span, resource.get("attributes", []), number, line[:EXCERPT_CHARS])
                )
    if not spans:
        raise RecordError("missing_required_field", "resourceSpans: the request holds no spans")
    return spans


def _items(obj: dict[str, Any], key: str, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, object) for each item of the optional list `obj[key]`."""
    list_path = join(path, key)
    for i, item in enumerate(check(obj.get(key, []), "list", list_path)):
        yield join(list_path, i), check(item, "object", join(list_path, i))


def _trajectory(trace_id: str, raws: list[_RawSpan], src: Source) -> Trajectory:
    spans = [_decode(raw, seen) for seen, raw in enumerate(_unique(raws))]
    roots = [s for s in spans if s.op == "invoke_agent" and not s.parent]
    if not roots:
        raise RecordError(
            "missing_required_field",
            f"trace {trace_id}: no root invoke_agent span"
            " (gen_ai.operation.name=invoke_agent without parentSpanId)",
        )
    root = min(roots, key=lambda s: s.order)
    children = sorted((s for s in spans if s is not root), key=lambda s: s.order)
    sources = [root, *(s for s in children if s.op == "chat")]
    fields = {name: _lookup(sources, attr) for name, attr in _PLAIN_ATTRS.items()}
    fields.update({name: _json_at(_lookup(sources, attr)) for name, attr in _JSON_ATTRS.items()})
    fields["system_prompt"] = _system_prompt(_json_at(_lookup(sources, _SYSTEM)))
    fields["request_params"] = At(
        {k[len(_REQUEST) :]: v for k, v in root.attrs.items() if k.startswith(_REQUEST) and k != _MODEL},
        f"span {root.span_id} {_REQUEST}*",
    )
    fields["started_at"] = At(
        MISSING if root.start is None else _ns_iso(root.start), f"span {root.span_id} start"
    )
    fields["ended_at"] = At(
        MISSING if root.end is None else _ns_iso(root.end), f"span {root.span_id} end"
    )
    extra = {k: v for k, v in root.attrs.items() if k not in _ROOT_KNOWN and not k.startswith(_REQUEST)}
    if root.resource:
        extra[_RESOURCE] = root.resource
    trajectory_id = require_id(root.attrs.get(_ID, trace_id), f"span {root.span_id} {_ID}")
    return assemble(
        trajectory_id, _steps(root, children), fields, extra, src.provenance(FORMAT, raws[0].line)
    )


def _unique(raws: list[_RawSpan]) -> list[_RawSpan]:
    """Export is at-least-once: a re-sent batch repeats spans. Span ids are unique within a
    trace, so the first copy of each is kept."""
    first: dict[str, _RawSpan] = {}
    for raw in raws:
        first.setdefault(raw.span["spanId"], raw)
    return list(first.values())


def _decode(raw: _RawSpan, seen: int) -> _Span:
    span, span_id = raw.span, raw.span["spanId"]
    where = f"span {span_id}"
    attrs = _attributes(span.get("attributes", []), f"{where} attributes")
    status = check(span.get("status") or {}, "object", f"{where} status")
    error = None
    if status.get("code") in _ERROR_CODES:
        message = check(status.get("message"), "str?", f"{where} status.message")
        error = message or check(attrs.get("error.type"), "str?", f"{where} error.type") or "error"
    start = _nanos(span.get("startTimeUnixNano"), f"{where} startTimeUnixNano")
    return _Span(
        span_id=span_id,
        parent=check(span.get("parentSpanId") or "", "str", f"{where} parentSpanId"),
        op=check(attrs.get(_OP), "str?", f"{where} {_OP}"),
        attrs=attrs,
        start=start,
        end=_nanos(span.get("endTimeUnixNano"), f"{where} endTimeUnixNano"),
        error=error,
        resource=_attributes(raw.resource, f"{where} resource attributes"),
        order=(start or 0, seen),
    )


def _lookup(spans: list[_Span], key: str) -> At:
    """The attribute from the first span that has it."""
    for span in spans:
        if key in span.attrs:
            return At(span.attrs[key], f"span {span.span_id} {key}")
    return At(MISSING, key)


def _json_at(at: At) -> At:
    """JSON-valued attributes may arrive as JSON strings or as structured AnyValues."""
    return (
        At(loads(at.value, f"{at.path} is not valid JSON"), at.path) if isinstance(at.value, str) else at
    )


def _system_prompt(at: At) -> At:
    if at.value is MISSING or at.value is None:
        return at
    return At(_step({"role": "system", "parts": at.value}, 0, at.path).content, at.path)


# --- parse: spans → steps -------------------------------------------------------------------


def _steps(root: _Span, children: list[_Span]) -> list[Step]:
    steps: list[Step] = []
    for span in children:
        if span.op == "chat":
            steps += _unseen(steps, _messages(span, _INPUT))
            outputs = _messages(span, _OUTPUT)
            if outputs:
                where = f"span {span.span_id}"
                steps.append(
                    replace(
                        _step(outputs[0].value, len(steps), outputs[0].path),
                        latency_ms=span.latency_ms,
                        prompt_tokens=check(span.attrs.get(_IN_TOKENS), "int32?", f"{where} {_IN_TOKENS}"),
                        completion_tokens=check(
                            span.attrs.get(_OUT_TOKENS), "int32?", f"{where} {_OUT_TOKENS}"
                        ),
                    )
                )
        elif span.op == "execute_tool":
            steps.append(
                Step(
                    index=len(steps),
                    role="tool",
                    content=_text(span.attrs.get(_RESULT)),
                    tool_call_id=check(
                        span.attrs.get(_CALL_ID), "str?", f"span {span.span_id} {_CALL_ID}"
                    ),
                    error=span.error,
                    latency_ms=span.latency_ms,
                )
            )
    return steps + _unseen(steps, _messages(root, _INPUT) + _messages(root, _OUTPUT))


def _messages(span: _Span, key: str) -> list[At]:
    at = _json_at(_lookup([span], key))
    if at.value is MISSING or at.value is None:
        return []
    return [At(m, join(at.path, i)) for i, m in enumerate(check(at.value, "list", at.path))]


def _unseen(steps: list[Step], history: list[At]) -> list[Step]:
    """Steps for the messages of a full-history view past the ones already seen."""
    return [_step(m.value, i, m.path) for i, m in enumerate(history) if i >= len(steps)]


def _step(value: Any, index: int, path: str) -> Step:
    """A conventions message `{"role", "parts": [...]}` → one step."""
    message = check(value, "object", path)
    role = check_role(required(message, "role", "str", path), join(path, "role"))
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    tool_call_id = None
    for i, part in enumerate(check(message.get("parts", []), "list", join(path, "parts"))):
        part_path = join(join(path, "parts"), i)
        part = check(part, "object", part_path)
        kind = required(part, "type", "str", part_path)
        if kind in ("text", "reasoning"):
            (texts if kind == "text" else reasoning).append(required(part, "content", "str", part_path))
        elif kind == "tool_call":
            raw_arguments = part.get("arguments")  # the conventions default it to null: none
            arguments = (
                {}
                if raw_arguments is None
                else parse_arguments(raw_arguments, join(part_path, "arguments"))
            )
            calls.append(
                ToolCall(
                    id=required(part, "id", "str", part_path),
                    name=required(part, "name", "str", part_path),
                    arguments=arguments,
                )
            )
        elif kind == "tool_call_response":
            tool_call_id = check(part.get("id"), "str?", join(part_path, "id"))
            response = _text(part.get("response"))
            if response is not None:
                texts.append(response)
        else:
            raise RecordError("wrong_type", f"{join(part_path, 'type')}: unsupported part type {kind!r}")
    return Step(
        index=index,
        role=role,
        content="".join(texts) if texts else None,
        reasoning="".join(reasoning) if reasoning else None,
        tool_calls=calls,
        tool_call_id=tool_call_id,
    )


def _text(value: Any) -> str | None:
    """A tool result as text: strings as they are, structured results as JSON."""
    return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- OTLP values ------------------------------------------------------------------------------


def _attributes(items: Any, path: str) -> dict[str, Any]:
    out = {}
    for i, item in enumerate(check(items, "list", path)):
        if type(item) is not dict or type(key := item.get("key")) is not str:
            item = check(item, "object", join(path, i))
            key = required(item, "key", "str", join(path, i))
        value = item.get("value") or {}
        # The common AnyValue, one scalar of its exact type, is read without building its path.
        if type(value) is dict and len(value) == 1:
            [(kind, inner)] = value.items()
            if type(inner) is _EXACT_SCALARS.get(kind):
                out[key] = inner
                continue
            if kind == "intValue" and type(inner) is str and len(inner) <= 21 and _INTEGER.match(inner):
                out[key] = int(inner)
                continue
        out[key] = _any(value, join(path, key))
    return out


def _any(value: Any, path: str) -> Any:
    """OTLP AnyValue → plain value; `{}` is null."""
    fields = check(value, "object", path)
    if not fields:
        return None
    if len(fields) != 1:
        raise RecordError("wrong_type", f"{path}: expected one AnyValue field, got {sorted(fields)}")
    [(kind, inner)] = fields.items()
    if kind in _ANY_SCALARS:
        return check(inner, _ANY_SCALARS[kind], path)
    if kind == "intValue":
        return _integer(inner, path)
    if kind == "arrayValue":
        values = check(check(inner, "object", path).get("values", []), "list", path)
        return [_any(v, join(path, i)) for i, v in enumerate(values)]
    if kind == "kvlistValue":
        return _attributes(check(inner, "object", path).get("values", []), path)
    raise RecordError("wrong_type", f"{path}: unknown AnyValue field {kind!r}")


def _integer(value: Any, path: str) -> int:
    """OTLP/JSON writes 64-bit integers as decimal strings."""
    if isinstance(value, str) and _INTEGER.match(value):
        if len(value) > 21:  # beyond any 64-bit integer (and Python's int() digit limit)
            raise RecordError("wrong_type", f"{path}: {value[:30]}... is not a 64-bit integer")
        return int(value)
    number: int = check(value, "int", path)
    return number


_MAX_NANOS = 2**64 - 1  # OTLP times are fixed64 nanoseconds since the epoch


def _nanos(value: Any, path: str) -> int | None:
    if value is None:
        return None
    nanos = _integer(value, path)
    if not 0 <= nanos <= _MAX_NANOS:
        raise RecordError("wrong_type", f"{path}: {str(nanos)[:30]} is outside the fixed64 nanosecond range")
    return nanos


def _encode(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": _to_any(value)} for key, value in attrs.items()]


def _to_any(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_to_any(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _encode(value)}}
    raise TypeError(f"cannot encode {type(value).__name__} as an OTLP AnyValue")


def _ns_iso(nanos: int) -> str:
    seconds, fraction = divmod(nanos, 10**9)
    text = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{fraction:09d}".rstrip("0") if fraction else "") + "Z"


def _iso_ns(text: str | None) -> int | None:
    if text is None:
        return None
    match = _ISO.match(text)
    if not match:
        raise ValueError(f"otel_genai export: {text!r} is not an ISO-8601 timestamp")
    zone = match[3] if match[3] and match[3] != "Z" else "+00:00"
    seconds = (datetime.fromisoformat(match[1] + zone) - _EPOCH) // timedelta(seconds=1)
    return seconds * 10**9 + int((match[2] or "0").ljust(9, "0"))


# --- export -----------------------------------------------------------------------------------


def _request(t: Trajectory) -> dict[str, Any]:
    resource = t.extra.get(_RESOURCE)
    resource = resource if isinstance(resource, dict) else {}
    # an empty or non-object "otel.resource" rides as a root attribute like any other extra
    extra = {k: v for k, v in t.extra.items() if not (k == _RESOURCE and resource)}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _encode(resource)},
                "scopeSpans": [{"scope": {"name": "flywheel"}, "spans": _spans(t, extra)}],
            }
        ]
    }


def _spans(t: Trajectory, extra: dict[str, Any]) -> list[dict[str, Any]]:
    trace_id, root_id = _hex(t.trajectory_id, 32), _hex(f"{t.trajectory_id}/root", 16)
    calls = {c.id: c for step in t.steps for c in step.tool_calls}
    history: list[dict[str, Any]] = []
    children = []
    cursor = _iso_ns(t.started_at) or 0
    for step in t.steps:
        message = _message(step)
        if step.role in ("assistant", "tool"):
            name, attrs = (
                _chat(t, step, history, message)
                if step.role == "assistant"
                else _tool(step, calls.get(step.tool_call_id or ""))
            )
            latency = None if step.latency_ms is None else round(step.latency_ms * 1e6)
            end = None if latency is None else cursor + latency
            error = step.error if step.role == "tool" else None
            span_id = _hex(f"{t.trajectory_id}/{step.index}", 16)
            children.append(_span(trace_id, span_id, root_id, name, (cursor, end), attrs, error))
            cursor += (latency or 0) + 1
        history.append(message)
    times = (_iso_ns(t.started_at), _iso_ns(t.ended_at))
    name = f"invoke_agent {t.agent_name or ''}".strip()
    return [_span(trace_id, root_id, None, name, times, _root_attrs(t, history, extra), None), *children]


def _root_attrs(t: Trajectory, history: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    values = field_values(t)
    known: dict[str, Any] = {
        _OP: "invoke_agent",
        _ID: t.trajectory_id,
        _INPUT: _dumps(history),
    }
    known.update({attr: values.get(name) for name, attr in _PLAIN_ATTRS.items()})
    known.update({attr: _dumps(values.get(name)) for name, attr in _JSON_ATTRS.items()})
    known[_SYSTEM] = (
        None if t.system_prompt is None else _dumps([{"type": "text", "content": t.system_prompt}])
    )
    attrs = _present(known)
    attrs.update({_REQUEST + k: v for k, v in t.request_params.items()})
    attrs.update({k: v for k, v in extra.items() if k not in attrs})
    return attrs


def _chat(
    t: Trajectory, step: Step, history: list[dict[str, Any]], message: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    output = {**message, "finish_reason": "tool_call" if step.tool_calls else "stop"}
    return f"chat {t.model or ''}".strip(), _present(
        {
            _OP: "chat",
            _MODEL: t.model,
            _INPUT: _dumps(history),
            _OUTPUT: _dumps([output]),
            _IN_TOKENS: step.prompt_tokens,
            _OUT_TOKENS: step.completion_tokens,
        }
    )


def _tool(step: Step, call: ToolCall | None) -> tuple[str, dict[str, Any]]:
    return f"execute_tool {call.name if call else ''}".strip(), _present(
        {
            _OP: "execute_tool",
            _TOOL_NAME: call and call.name,
            _CALL_ID: step.tool_call_id,
            _ARGUMENTS: call and _dumps(call.arguments),
            _RESULT: step.content,
            "error.type": None if step.error is None else "_OTHER",
        }
    )


def _message(step: Step) -> dict[str, Any]:
    if step.role == "tool":
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": step.tool_call_id, "response": step.content}],
        }
    parts: list[dict[str, Any]] = []
    parts += [{"type": "reasoning", "content": step.reasoning}] if step.reasoning is not None else []
    parts += [{"type": "text", "content": step.content}] if step.content is not None else []
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments}
        for c in step.tool_calls
    ]
    return {"role": step.role, "parts": parts}


def _span(
    trace_id: str,
    span_id: str,
    parent: str | None,
    name: str,
    times: tuple[int | None, int | None],
    attrs: dict[str, Any],
    error: str | None,
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": _SPAN_KIND_INTERNAL,
    }
    if parent:
        span["parentSpanId"] = parent
    for key, nanos in zip(("startTimeUnixNano", "endTimeUnixNano"), times, strict=True):
        if nanos is not None:
            span[key] = str(nanos)
    span["attributes"] = _encode(attrs)
    if error is not None:
        span["status"] = {"code": 2, "message": error}
    return span


def _present(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None}


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _hex(text: str, digits: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:digits]
